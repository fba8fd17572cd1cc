"""Users, sessions and refresh tokens of the local `/auth/v1` (a development stand-in for
GoTrue, not GoTrue), in GoTrue's own tables of the local `auth` schema.

The pool logs in as `supabase_auth_admin`, the role GoTrue logs in as on hosted Supabase
(owner of the auth tables, NOINHERIT), so the custom access token hook runs as that role
here too. Emails are stored lower-cased; passwords as bcrypt hashes (tools.gateway.auth_api
.passwords). Refresh tokens are rotated: each use revokes the token and issues a child
(`parent` names it), all in the session the sign-in opened.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from tools.gateway.limits import text_problem
from tools.settings import LOCAL_PASSWORD

AuthConn = AsyncConnection[DictRow]
AUTH_ADMIN = "supabase_auth_admin"
USER_COLUMNS = (
    "id, aud, role, email, encrypted_password, email_confirmed_at, phone, confirmed_at,"
    " last_sign_in_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at,"
    " banned_until, is_anonymous, is_sso_user"
)


def auth_admin_url(database_url: str, password: str = LOCAL_PASSWORD) -> str:
    return make_conninfo(database_url, user=AUTH_ADMIN, password=password)


async def open_auth_pool(database_url: str, *, max_size: int = 4,
                         wait_seconds: float = 10) -> AsyncConnectionPool[AuthConn]:
    """Autocommit connections as supabase_auth_admin; a probe first reports a wrong URL or
    a cluster bootstrapped before this role existed in PostgreSQL's words."""
    url = auth_admin_url(database_url)
    probe = await AsyncConnection.connect(url, connect_timeout=max(1, int(wait_seconds)))
    await probe.close()
    pool: AsyncConnectionPool[AuthConn] = AsyncConnectionPool(
        url, min_size=1, max_size=max_size, name="gateway-auth", open=False,
        timeout=wait_seconds, check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "row_factory": dict_row},
    )
    await pool.open(wait=True, timeout=wait_seconds)
    return pool


def new_refresh_token() -> str:
    """An opaque token of 12 URL-safe characters, as GoTrue issues them."""
    return secrets.token_urlsafe(9)


async def user_by_email(conn: AuthConn, email: str) -> DictRow | None:
    cursor = await conn.execute(
        f"select {USER_COLUMNS} from auth.users where email = %s and not is_sso_user", (email,))
    return await cursor.fetchone()


async def user_by_id(conn: AuthConn, user_id: UUID, *, lock: bool = False) -> DictRow | None:
    suffix = " for update" if lock else ""
    cursor = await conn.execute(
        f"select {USER_COLUMNS} from auth.users where id = %s{suffix}", (user_id,))
    return await cursor.fetchone()


@dataclass(frozen=True)
class NewUser:
    """A row for auth.users; `confirmed` stamps email_confirmed_at (autoconfirm)."""

    email: str
    password_hash: str | None
    user_metadata: dict[str, Any]
    app_metadata: dict[str, Any]
    confirmed: bool = True
    id: UUID | None = None


async def insert_user(conn: AuthConn, user: NewUser) -> DictRow | None:
    """The new user's row, or None when the email is taken (nothing stored then)."""
    cursor = await conn.execute(
        "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,"
        " email_confirmed_at, raw_app_meta_data, raw_user_meta_data, is_super_admin,"
        " created_at, updated_at)"
        " values ('00000000-0000-0000-0000-000000000000', %s, 'authenticated',"
        " 'authenticated', %s, %s, case when %s then now() end, %s, %s, false, now(), now())"
        f" on conflict do nothing returning {USER_COLUMNS}",
        (user.id or uuid4(), user.email, user.password_hash, user.confirmed,
         Jsonb(user.app_metadata), Jsonb(user.user_metadata)),
    )
    return await cursor.fetchone()


# Columns an update may set, by name; values are bound parameters.
UPDATABLE = frozenset({"email", "encrypted_password", "raw_app_meta_data",
                       "raw_user_meta_data", "email_confirmed_at", "banned_until"})


async def update_user(conn: AuthConn, user_id: UUID, changes: dict[str, Any]) -> DictRow | None:
    """The row after setting `changes` (names from UPDATABLE) and updated_at."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    assignments = "".join(f"{name} = %s, " for name in changes)
    values = [Jsonb(v) if name.startswith("raw_") else v for name, v in changes.items()]
    cursor = await conn.execute(
        f"update auth.users set {assignments}updated_at = now() where id = %s"
        f" returning {USER_COLUMNS}", (*values, user_id))
    return await cursor.fetchone()


async def email_taken(conn: AuthConn, email: str, by_other_than: UUID) -> bool:
    cursor = await conn.execute(
        "select 1 from auth.users where email = %s and id <> %s and not is_sso_user",
        (email, by_other_than))
    return await cursor.fetchone() is not None


async def delete_user(conn: AuthConn, user_id: UUID) -> bool:
    cursor = await conn.execute("delete from auth.users where id = %s", (user_id,))
    return cursor.rowcount > 0


async def list_users(conn: AuthConn, page: int, per_page: int) -> tuple[list[DictRow], int]:
    """One page of users, oldest first, and how many there are in all."""
    cursor = await conn.execute("select count(*) as total from auth.users")
    counted = await cursor.fetchone()
    cursor = await conn.execute(
        f"select {USER_COLUMNS} from auth.users order by created_at, id limit %s offset %s",
        (per_page, (page - 1) * per_page))
    return await cursor.fetchall(), int(counted["total"]) if counted else 0


async def open_session(conn: AuthConn, user_id: UUID, user_agent: str | None
                       ) -> tuple[UUID, str]:
    """A new session of the user with its first refresh token; stamps last_sign_in_at."""
    session_id = uuid4()
    token = new_refresh_token()
    agent = (user_agent or "")[:1024]
    if text_problem(agent):  # bytes that are not UTF-8 arrive as lone surrogates
        agent = ""
    await conn.execute(
        "insert into auth.sessions (id, user_id, aal, created_at, updated_at, refreshed_at,"
        " user_agent) values (%s, %s, 'aal1', now(), now(), now() at time zone 'utc', %s)",
        (session_id, user_id, agent or None))
    await conn.execute(
        "insert into auth.refresh_tokens (instance_id, token, user_id, revoked, parent,"
        " session_id) values ('00000000-0000-0000-0000-000000000000', %s, %s, false, null, %s)",
        (token, str(user_id), session_id))
    await conn.execute(
        "update auth.users set last_sign_in_at = now(), updated_at = now() where id = %s",
        (user_id,))
    return session_id, token


async def session_alive(conn: AuthConn, session_id: UUID, user_id: UUID) -> bool:
    """Whether the session exists, is the user's, and has not been ended."""
    cursor = await conn.execute(
        "select 1 from auth.sessions where id = %s and user_id = %s"
        " and (not_after is null or not_after > now())", (session_id, user_id))
    return await cursor.fetchone() is not None


async def end_sessions(conn: AuthConn, user_id: UUID, session_id: UUID | None,
                       scope: str) -> None:
    """Logout: `global` every session of the user, `local` this one, `others` the rest
    (their refresh tokens go with them)."""
    if scope == "global" or session_id is None:
        await conn.execute("delete from auth.sessions where user_id = %s", (user_id,))
    elif scope == "local":
        await conn.execute("delete from auth.sessions where id = %s", (session_id,))
    else:
        await conn.execute("delete from auth.sessions where user_id = %s and id <> %s",
                           (user_id, session_id))
