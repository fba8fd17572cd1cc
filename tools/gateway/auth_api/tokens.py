"""Access tokens of the local `/auth/v1` (a development stand-in, not GoTrue), shaped as
GoTrue's and signed with the local secret (tools.local.keys), so that the rest of the
gateway, PostgREST-style SQL (`auth.uid()`, `intent.current_tenant_id()`) and Realtime
accept them like any other token.

With `[auth.hook.custom_access_token]` enabled, the claims first go through the hook
function, as Supabase runs it: `select <schema>.<function>(event)` as supabase_auth_admin,
with the event `{user_id, claims, authentication_method}`; the answer's `claims` are
signed when the claims GoTrue requires are still there. `{"error": {http_code, message}}`
refuses the sign-in with that status.
"""

from __future__ import annotations

import json
import time
from typing import Any
from uuid import UUID

import jwt
import psycopg
from psycopg import sql
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from tools.gateway.auth_api.errors import AuthApiError
from tools.gateway.auth_api.settings import AuthSettings, HookFunction
from tools.gateway.auth_api.store import AuthConn
from tools.gateway.auth_api.users import app_metadata, user_json
from tools.local import keys as local_keys

# What GoTrue insists a hook leaves in the claims (its output schema's `required`).
REQUIRED_CLAIMS = ("aud", "exp", "iat", "sub", "email", "phone", "role", "aal",
                   "session_id", "is_anonymous")
HOOK_TIMEOUT = "2s"


def claims_for(row: DictRow, *, session_id: UUID, issuer: str, expiry: int,
               now: int | None = None) -> dict[str, Any]:
    """GoTrue's claims for the user of `row` in `session_id` (signed in with a password,
    the only way the stand-in has)."""
    issued = int(time.time()) if now is None else now
    return {
        "iss": issuer,
        "sub": str(row["id"]),
        "aud": row["aud"] or "authenticated",
        "exp": issued + expiry,
        "iat": issued,
        "email": row["email"] or "",
        "phone": row["phone"] or "",
        "app_metadata": app_metadata(row),
        "user_metadata": row["raw_user_meta_data"] or {},
        "role": row["role"] or "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": issued}],
        "session_id": str(session_id),
        "is_anonymous": bool(row["is_anonymous"]),
    }


def _hook_failure(message: str) -> AuthApiError:
    return AuthApiError(500, "unexpected_failure", f"Error running hook URI: {message}")


async def run_hook(conn: AuthConn, hook: HookFunction, user_id: UUID,
                   claims: dict[str, Any], method: str) -> dict[str, Any]:
    """The claims the hook returns, in a savepoint of the caller's transaction."""
    event = {"user_id": str(user_id), "claims": claims, "authentication_method": method}
    call = sql.SQL("select {}.{}(%s) as result").format(
        sql.Identifier(hook.schema), sql.Identifier(hook.name))
    try:
        async with conn.transaction():
            await conn.execute(f"set local statement_timeout = '{HOOK_TIMEOUT}'")
            cursor = await conn.execute(call, (Jsonb(event),))
            row = await cursor.fetchone()
    except psycopg.Error as exc:
        raise _hook_failure((exc.diag.message_primary or str(exc)).strip()) from None
    result = row["result"] if row else None
    if isinstance(result, str):
        result = json.loads(result)
    if not isinstance(result, dict):
        raise _hook_failure("the hook must return a JSON object")
    error = result.get("error")
    if isinstance(error, dict):
        status = error.get("http_code")
        status = status if isinstance(status, int) and 400 <= status <= 599 else 400
        raise AuthApiError(status, "unexpected_failure" if status >= 500 else "hook_error",
                           str(error.get("message") or "the access token hook refused"))
    output = result.get("claims")
    if not isinstance(output, dict):
        raise _hook_failure("the hook's output has no claims object")
    missing = [name for name in REQUIRED_CLAIMS if name not in output]
    if missing:
        raise _hook_failure(f"output claims do not conform to the expected schema: "
                            f"missing {', '.join(missing)}")
    if not all(type(output[name]) is int for name in ("exp", "iat")):
        raise _hook_failure("output claims do not conform to the expected schema: "
                            "exp and iat must be integers")
    return output


def sign(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, local_keys.LOCAL_JWT_SECRET, algorithm=local_keys.ALGORITHM,
                      headers={"typ": "JWT"})


async def session_response(conn: AuthConn, row: DictRow, *, session_id: UUID,
                           refresh_token: str, settings: AuthSettings, issuer: str,
                           method: str) -> dict[str, Any]:
    """GoTrue's AccessTokenResponse: the token (through the hook when enabled), its
    lifetime, the refresh token and the user."""
    claims = claims_for(row, session_id=session_id, issuer=issuer,
                        expiry=settings.jwt_expiry)
    if settings.access_token_hook is not None:
        claims = await run_hook(conn, settings.access_token_hook, row["id"], claims, method)
    return {
        "access_token": sign(claims),
        "token_type": "bearer",
        "expires_in": settings.jwt_expiry,
        "expires_at": claims["exp"],
        "refresh_token": refresh_token,
        "user": user_json(row),
    }
