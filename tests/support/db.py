"""Small readers and writers of the session's database, for arrange and assert steps."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from projections.roles import RUNTIME_ROLE
from pump.store.connections import Conn
from tools.settings import LOCAL_PASSWORD


def runtime_url(database_url: str) -> str:
    """The session database as the runtime's least-privilege role (pump, worker, relay)."""
    return make_conninfo(database_url, user=RUNTIME_ROLE, password=LOCAL_PASSWORD)


async def fetch_all(pool: AsyncConnectionPool[Conn], query: str, *args: Any
                    ) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn:
        cur = await conn.execute(query, args)
        return await cur.fetchall()


async def fetch_one(pool: AsyncConnectionPool[Conn], query: str, *args: Any) -> tuple[Any, ...]:
    """The query's first row, which must exist."""
    async with pool.connection() as conn:
        cur = await conn.execute(query, args)
        found: tuple[Any, ...] | None = await cur.fetchone()
        assert found is not None
        return found


async def execute(pool: AsyncConnectionPool[Conn], query: str, *args: Any) -> None:
    async with pool.connection() as conn:
        await conn.execute(query, args)


def fetch_all_sync(database_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """`fetch_all` on a connection of its own, for tests without an event loop."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(query, args).fetchall()


def table_scans(conn: psycopg.Connection[Any], table: str) -> tuple[int, int]:
    """Sequential and index scans of `table` in the connection's transaction so far."""
    row = conn.execute(
        "select coalesce(seq_scan, 0), coalesce(idx_scan, 0) from pg_stat_xact_user_tables"
        " where relid = %s::regclass", (table,)).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))
