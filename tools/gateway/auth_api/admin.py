"""GoTrue's admin users API in the local `/auth/v1` (a development stand-in, not GoTrue),
for a service_role bearer only: create, list (page/per_page, X-Total-Count and Link as
GoTrue sends them), get, update (app_metadata and user_metadata merged, email, password,
email_confirm, ban_duration) and delete."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aiohttp import web

from tools.gateway.auth_api.errors import AuthApiError, user_not_found, validation_failed
from tools.gateway.auth_api.inputs import (
    email_address,
    json_body,
    metadata,
    new_password,
    optional_bool,
    optional_string,
)
from tools.gateway.auth_api.passwords import hash_password
from tools.gateway.auth_api.state import gotrue, require_admin, state_of
from tools.gateway.auth_api.store import (
    AuthConn,
    NewUser,
    delete_user,
    email_taken,
    insert_user,
    list_users,
    update_user,
    user_by_id,
)
from tools.gateway.auth_api.users import merged, user_json
from tools.gateway.errors import json_response

EMAIL_EXISTS = AuthApiError(422, "email_exists",
                            "A user with this email address has already been registered")
MAX_PER_PAGE = 1000
# A Go duration, as GoTrue's ban_duration is parsed: "24h", "1h30m", "90s".
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
MAX_BAN = timedelta(days=100 * 366)


def banned_until(value: str | None) -> datetime | bool | None:
    """When a ban given as a Go duration ends; None for "none" (lift it); False when the
    body names no ban."""
    if value is None:
        return False
    if value == "none":
        return None
    if len(value) > 64 or not _DURATION.match(value):
        raise validation_failed("invalid format for ban duration: " + value[:64])
    seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    if seconds > MAX_BAN.total_seconds():
        raise validation_failed("ban duration is too long")
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _user_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["user_id"])
    except ValueError:
        raise AuthApiError(404, "validation_failed", "user_id must be an UUID") from None


async def _admin_changes(body: dict[str, Any], current: Any, conn: AuthConn,
                         minimum: int) -> dict[str, Any]:
    """The columns an admin update sets; refusals before anything is written."""
    changes: dict[str, Any] = {}
    email = optional_string(body, "email")
    if email:
        email = email_address(email)
        if email != current["email"] and await email_taken(conn, email, current["id"]):
            raise EMAIL_EXISTS
        changes["email"] = email
    password = optional_string(body, "password")
    if password is not None:
        changes["encrypted_password"] = await hash_password(new_password(password, minimum))
    for key, column in (("app_metadata", "raw_app_meta_data"),
                        ("user_metadata", "raw_user_meta_data")):
        given = metadata(body, key)
        if given is not None:
            changes[column] = merged(current[column], given)
    confirm = optional_bool(body, "email_confirm")
    if confirm is not None:
        changes["email_confirmed_at"] = datetime.now(UTC) if confirm else None
    ban = banned_until(optional_string(body, "ban_duration"))
    if ban is not False:
        changes["banned_until"] = ban
    return changes


@gotrue
async def create(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    state = state_of(request)
    body = await json_body(request)
    if optional_string(body, "phone"):
        raise AuthApiError(400, "phone_provider_disabled",
                           "Phone users are not served by the local gateway")
    email = email_address(optional_string(body, "email"))
    password = optional_string(body, "password")
    hashed = None
    if password is not None:
        hashed = await hash_password(new_password(password, state.settings.minimum_password_length))
    user_metadata = metadata(body, "user_metadata") or {}
    app_metadata = metadata(body, "app_metadata") or {}
    ban = banned_until(optional_string(body, "ban_duration"))
    new = NewUser(email=email, password_hash=hashed, user_metadata=user_metadata,
                  app_metadata={"provider": "email", "providers": ["email"], **app_metadata},
                  confirmed=bool(optional_bool(body, "email_confirm")))
    async with state.pool.connection() as conn, conn.transaction():
        row = await insert_user(conn, new)
        if row is None:
            raise EMAIL_EXISTS
        if ban is not False:
            row = await update_user(conn, row["id"], {"banned_until": ban})
    assert row is not None
    return json_response(user_json(row))


def _positive(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise AuthApiError(400, "validation_failed", f"Bad Pagination Parameters: {name}")
    return int(raw)


@gotrue
async def list_all(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    state = state_of(request)
    page = _positive(request, "page", 1)
    per_page = min(_positive(request, "per_page", 50), MAX_PER_PAGE)
    async with state.pool.connection() as conn:
        rows, total = await list_users(conn, page, per_page)
    last = max(1, -(-total // per_page))
    base = f"{state.issuer}/admin/users"
    links = [f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"'] if page < last else []
    links.append(f'<{base}?page={last}&per_page={per_page}>; rel="last"')
    return json_response({"users": [user_json(r) for r in rows], "aud": "authenticated"},
                         headers={"X-Total-Count": str(total), "Link": ", ".join(links)})


@gotrue
async def get_one(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    user_id = _user_id(request)
    async with state_of(request).pool.connection() as conn:
        row = await user_by_id(conn, user_id)
    if row is None:
        raise user_not_found()
    return json_response(user_json(row))


@gotrue
async def update(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    state = state_of(request)
    user_id = _user_id(request)
    body = await json_body(request)
    async with state.pool.connection() as conn, conn.transaction():
        current = await user_by_id(conn, user_id, lock=True)
        if current is None:
            raise user_not_found()
        changes = await _admin_changes(body, current, conn,
                                       state.settings.minimum_password_length)
        row = (await update_user(conn, user_id, changes)) if changes else current
    assert row is not None
    return json_response(user_json(row))


@gotrue
async def delete(request: web.Request) -> web.StreamResponse:
    require_admin(request)
    user_id = _user_id(request)
    body = await json_body(request)
    if optional_bool(body, "should_soft_delete"):
        raise validation_failed("soft deletion is not served by the local gateway")
    async with state_of(request).pool.connection() as conn:
        if not await delete_user(conn, user_id):
            raise user_not_found()
    return json_response({})
