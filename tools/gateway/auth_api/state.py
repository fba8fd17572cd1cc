"""What the handlers of the local `/auth/v1` (a development stand-in, not GoTrue) share:
its settings, its issuer and its own pool (as supabase_auth_admin), plus the wrapper that
turns every refusal into GoTrue's error shape and never lets a stack trace out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from aiohttp import web
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tools.gateway.auth import AuthError, authenticate
from tools.gateway.auth_api.errors import AuthApiError, error_response
from tools.gateway.auth_api.settings import AuthSettings
from tools.gateway.auth_api.store import AuthConn, session_alive, user_by_id
from tools.gateway.shared import ROLE, log_event

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The roles GoTrue lets use the admin API (its JWT admin roles' default).
ADMIN_ROLES = frozenset({"service_role", "supabase_admin"})


@dataclass
class AuthState:
    settings: AuthSettings
    issuer: str
    _pool: AsyncConnectionPool[AuthConn] | None = field(default=None, repr=False)

    @property
    def pool(self) -> AsyncConnectionPool[AuthConn]:
        if self._pool is None:
            raise RuntimeError("the auth pool is not open (app not started)")
        return self._pool


AUTH = web.AppKey("intent.auth", AuthState)


def state_of(request: web.Request) -> AuthState:
    return request.app[AUTH]


def gotrue(handler: Handler) -> Handler:
    """The handler, with refusals in GoTrue's shape and database failures as a logged
    500 `unexpected_failure` (never a trace)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except AuthApiError as exc:
            return error_response(request, exc)
        except (psycopg.Error, PoolTimeout) as exc:
            log_event("auth_database_error", logging.ERROR, path=request.path, error=repr(exc))
            return error_response(request, AuthApiError(
                500, "unexpected_failure", "Database error, see the gateway's log"))

    return wrapped


def caller_claims(request: web.Request) -> dict[str, Any]:
    """The verified bearer's claims: 401 without one, 403 when it does not verify."""
    try:
        caller = authenticate(request.headers, require=True)
    except AuthError as exc:
        if exc.missing:
            raise AuthApiError(401, "no_authorization",
                               "This endpoint requires a valid Bearer token") from None
        detail = "token is expired" if exc.expired else exc.reason
        raise AuthApiError(403, "bad_jwt", f"invalid JWT: unable to parse or verify "
                           f"signature, {detail}") from None
    request[ROLE] = caller.role
    return caller.claims


def require_admin(request: web.Request) -> None:
    if caller_claims(request).get("role") not in ADMIN_ROLES:
        raise AuthApiError(403, "not_admin", "User not allowed")


@dataclass(frozen=True)
class SignedIn:
    """The signed-in caller: their row and the session their token names (if any)."""

    user: DictRow
    session_id: UUID | None


def _uuid_claim(claims: dict[str, Any], name: str) -> UUID | None:
    value = claims.get(name)
    if value is None:
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise AuthApiError(403, "bad_jwt", f"invalid claim: {name} claim must be a UUID") from None


async def signed_in(request: web.Request, conn: AuthConn, *, lock: bool = False) -> SignedIn:
    """The user the bearer is for, whose session (when it names one) is still alive."""
    claims = caller_claims(request)
    user_id = _uuid_claim(claims, "sub")
    if user_id is None:
        raise AuthApiError(403, "bad_jwt", "invalid claim: missing sub claim")
    user = await user_by_id(conn, user_id, lock=lock)
    if user is None:
        raise AuthApiError(403, "user_not_found", "User from sub claim in JWT does not exist")
    session_id = _uuid_claim(claims, "session_id")
    if session_id is not None and not await session_alive(conn, session_id, user_id):
        raise AuthApiError(403, "session_not_found",
                           "Session from session_id claim in JWT does not exist")
    return SignedIn(user, session_id)
