"""The user-facing endpoints of the local `/auth/v1`, a development stand-in for GoTrue
(not GoTrue): sign-up (auto-confirmed, so it answers a session), the password and
refresh-token grants, the signed-in user, logout, settings and health."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tools.gateway.auth_api.errors import AuthApiError, validation_failed
from tools.gateway.auth_api.inputs import (
    email_address,
    json_body,
    metadata,
    new_password,
    optional_string,
)
from tools.gateway.auth_api.passwords import hash_password, password_matches
from tools.gateway.auth_api.refresh import Rotated, not_found, rotate
from tools.gateway.auth_api.state import gotrue, signed_in, state_of
from tools.gateway.auth_api.store import (
    NewUser,
    email_taken,
    end_sessions,
    insert_user,
    open_session,
    update_user,
    user_by_email,
    user_by_id,
)
from tools.gateway.auth_api.tokens import session_response
from tools.gateway.auth_api.users import merged, user_json
from tools.gateway.errors import json_response

INVALID_CREDENTIALS = AuthApiError(400, "invalid_credentials", "Invalid login credentials")
LOGOUT_SCOPES = frozenset({"global", "local", "others"})
MAX_REFRESH_TOKEN_LENGTH = 255


def _no_phone(body: dict[str, Any]) -> None:
    if optional_string(body, "phone"):
        raise AuthApiError(400, "phone_provider_disabled",
                           "Phone logins are not served by the local gateway")


@gotrue
async def signup(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    body = await json_body(request)
    if not state.settings.enable_signup:
        raise AuthApiError(422, "signup_disabled", "Signups not allowed for this instance")
    _no_phone(body)
    email = email_address(optional_string(body, "email"))
    password = new_password(optional_string(body, "password"),
                            state.settings.minimum_password_length)
    data = metadata(body, "data") or {}
    hashed = await hash_password(password)
    async with state.pool.connection() as conn, conn.transaction():
        row = await insert_user(conn, NewUser(
            email=email, password_hash=hashed, user_metadata=data,
            app_metadata={"provider": "email", "providers": ["email"]}))
        if row is None:
            raise AuthApiError(422, "user_already_exists", "User already registered")
        session_id, refresh_token = await open_session(
            conn, row["id"], request.headers.get("User-Agent"))
        row = await user_by_id(conn, row["id"])
        assert row is not None
        answer = await session_response(conn, row, session_id=session_id,
                                        refresh_token=refresh_token, settings=state.settings,
                                        issuer=state.issuer, method="password")
    return json_response(answer)


async def _password_grant(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = state_of(request)
    _no_phone(body)
    email = optional_string(body, "email")
    password = optional_string(body, "password")
    if not email:
        raise validation_failed("missing email or phone")
    if password is None:
        raise INVALID_CREDENTIALS
    async with state.pool.connection() as conn:
        row = await user_by_email(conn, email.strip().lower()[:256])
    if row is None or not await password_matches(password, row["encrypted_password"]):
        raise INVALID_CREDENTIALS
    if row["email_confirmed_at"] is None:
        raise AuthApiError(400, "email_not_confirmed", "Email not confirmed")
    async with state.pool.connection() as conn, conn.transaction():
        banned = await conn.execute(
            "select banned_until > now() as banned from auth.users where id = %s", (row["id"],))
        flag = await banned.fetchone()
        if flag and flag["banned"]:
            raise AuthApiError(400, "user_banned", "User is banned")
        session_id, refresh_token = await open_session(
            conn, row["id"], request.headers.get("User-Agent"))
        row = await user_by_id(conn, row["id"])
        assert row is not None
        return await session_response(conn, row, session_id=session_id,
                                      refresh_token=refresh_token, settings=state.settings,
                                      issuer=state.issuer, method="password")


async def _refresh_grant(request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
    state = state_of(request)
    token = optional_string(body, "refresh_token")
    if not token:
        raise validation_failed("refresh_token required")
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise not_found()
    async with state.pool.connection() as conn:
        async with conn.transaction():
            outcome = await rotate(conn, token,
                                   reuse_interval=state.settings.refresh_token_reuse_interval,
                                   rotation=state.settings.refresh_token_rotation)
            if isinstance(outcome, Rotated):
                row = await user_by_id(conn, outcome.user_id)
                if row is None:
                    raise not_found()
                return await session_response(
                    conn, row, session_id=outcome.session_id,
                    refresh_token=outcome.refresh_token, settings=state.settings,
                    issuer=state.issuer, method="token_refresh")
        raise outcome  # committed: the session's revocation stays


@gotrue
async def token(request: web.Request) -> web.StreamResponse:
    grant_type = request.query.get("grant_type", "")
    body = await json_body(request)
    if grant_type == "password":
        return json_response(await _password_grant(request, body))
    if grant_type == "refresh_token":
        return json_response(await _refresh_grant(request, body))
    raise AuthApiError(400, "unsupported_grant_type",
                       "unsupported_grant_type: the local gateway serves password and "
                       "refresh_token")


@gotrue
async def get_user(request: web.Request) -> web.StreamResponse:
    async with state_of(request).pool.connection() as conn:
        caller = await signed_in(request, conn)
    return json_response(user_json(caller.user))


async def _user_changes(body: dict[str, Any], current: Any, minimum: int,
                        conn: Any) -> dict[str, Any]:
    """The columns a user's own update sets; refusals before anything is written."""
    changes: dict[str, Any] = {}
    email = optional_string(body, "email")
    if email:
        email = email_address(email)
        if email != current["email"]:
            if await email_taken(conn, email, current["id"]):
                raise AuthApiError(422, "email_exists", "A user with this email address "
                                   "has already been registered")
            changes["email"] = email
    password = optional_string(body, "password")
    if password is not None:
        new_password(password, minimum)
        if await password_matches(password, current["encrypted_password"]):
            raise AuthApiError(422, "same_password",
                               "New password should be different from the old password.")
        changes["encrypted_password"] = await hash_password(password)
    data = metadata(body, "data")
    if data is not None:
        changes["raw_user_meta_data"] = merged(current["raw_user_meta_data"], data)
    return changes


@gotrue
async def put_user(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    body = await json_body(request)
    _no_phone(body)
    if body.get("app_metadata") is not None:
        raise AuthApiError(403, "not_admin", "Updating app_metadata requires admin privileges")
    async with state.pool.connection() as conn, conn.transaction():
        caller = await signed_in(request, conn, lock=True)
        changes = await _user_changes(body, caller.user, state.settings.minimum_password_length,
                                      conn)
        row = (await update_user(conn, caller.user["id"], changes)) if changes else caller.user
    assert row is not None
    return json_response(user_json(row))


@gotrue
async def logout(request: web.Request) -> web.StreamResponse:
    scope = request.query.get("scope", "global")
    if scope not in LOGOUT_SCOPES:
        raise validation_failed(f"Unsupported logout scope {scope[:40]!r}")
    async with state_of(request).pool.connection() as conn, conn.transaction():
        caller = await signed_in(request, conn)
        await end_sessions(conn, caller.user["id"], caller.session_id, scope)
    return web.Response(status=204)


@gotrue
async def settings(request: web.Request) -> web.StreamResponse:
    enabled = state_of(request).settings.enable_signup
    providers = ["anonymous_users", "apple", "azure", "bitbucket", "discord", "facebook",
                 "figma", "github", "gitlab", "google", "keycloak", "kakao", "linkedin",
                 "notion", "phone", "slack", "spotify", "twitch", "twitter", "workos", "zoom"]
    return json_response({
        "external": {"email": True, **dict.fromkeys(providers, False)},
        "disable_signup": not enabled,
        "mailer_autoconfirm": True,
        "phone_autoconfirm": False,
        "sms_provider": "",
        "saml_enabled": False,
    })


@gotrue
async def health(request: web.Request) -> web.StreamResponse:
    return json_response({
        "version": "intent-local",
        "name": "GoTrue",
        "description": "Intent's local development stand-in for GoTrue (not GoTrue)",
    })
