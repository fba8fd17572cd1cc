"""One database transaction per request, set up the way PostgREST sets it up.

The pool logs in as `authenticator` (NOINHERIT: no rights of its own, member of anon,
authenticated and service_role). Each request runs in its own transaction that first
switches to the caller's role and publishes the verified claims and the request for SQL
(`auth.jwt()`, `auth.uid()`, `intent.current_tenant_id()` read them); every setting is
transaction-local, so nothing leaks to the next request on the same connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tools.gateway.auth import Caller
from tools.gateway.errors import PostgrestError, status_for_sqlstate
from tools.settings import LOCAL_PASSWORD

Conn = AsyncConnection[Any]
AUTHENTICATOR = "authenticator"
# Supabase exposes `public` and keeps `extensions` on the search path of API requests.
SEARCH_PATH = '"public", "extensions"'
EXPOSED_SCHEMA = "public"


def authenticator_url(database_url: str, password: str = LOCAL_PASSWORD) -> str:
    """The same server and database, logged in as the role PostgREST logs in as."""
    return make_conninfo(database_url, user=AUTHENTICATOR, password=password)


async def open_authenticator_pool(
    database_url: str, *, max_size: int = 10, wait_seconds: float = 10
) -> AsyncConnectionPool[Conn]:
    """Autocommit connections as `authenticator`; each request opens its own transaction.

    One direct connection first, so that a wrong URL or a stopped server is reported at
    once and in PostgreSQL's words, not as a pool that never filled.
    """
    url = authenticator_url(database_url)
    probe = await AsyncConnection.connect(url, connect_timeout=max(1, int(wait_seconds)))
    await probe.close()
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        name="gateway",
        open=False,
        timeout=wait_seconds,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True},
    )
    await pool.open(wait=True, timeout=wait_seconds)
    return pool


def request_headers_json(headers: Mapping[str, str]) -> str:
    """`request.headers` as PostgREST sets it: lower-case names, repeated ones joined."""
    merged: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return json.dumps(merged)


@asynccontextmanager
async def request_transaction(
    pool: AsyncConnectionPool[Conn],
    caller: Caller,
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    read_only: bool,
) -> AsyncIterator[Conn]:
    """BEGIN [READ ONLY]; role, claims and request settings; the caller's work; COMMIT
    (ROLLBACK when it raises). Database errors come out as PostgrestError."""
    try:
        async with pool.connection() as conn, conn.transaction():
            if read_only:
                await conn.execute("set transaction read only")
            await conn.execute(
                "select set_config('search_path', %s, true),"
                " set_config('role', %s, true),"
                " set_config('request.jwt.claims', %s, true),"
                " set_config('request.method', %s, true),"
                " set_config('request.path', %s, true),"
                " set_config('request.headers', %s, true)",
                (
                    SEARCH_PATH,
                    caller.role,
                    json.dumps(caller.claims),
                    method,
                    path,
                    request_headers_json(headers),
                ),
            )
            yield conn
    except PoolTimeout:
        raise PostgrestError(
            504, "PGRST003", "Timed out acquiring connection from connection pool."
        ) from None
    except psycopg.Error as exc:
        raise database_error(exc, caller) from None


def database_error(exc: psycopg.Error, caller: Caller) -> PostgrestError:
    """A database error as PostgREST answers it: the error's own fields, PostgREST's status."""
    sqlstate = exc.sqlstate
    if sqlstate is None:  # the connection failed: no answer from the server at all
        return PostgrestError(503, "PGRST001", "Database client error. Retrying the "
                              "connection.", details=str(exc) or None)
    diag = exc.diag
    status = status_for_sqlstate(sqlstate, anonymous=caller.role == "anon")
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return PostgrestError(
        status,
        sqlstate,
        diag.message_primary or str(exc),
        details=diag.message_detail,
        hint=diag.message_hint,
        headers=headers,
    )
