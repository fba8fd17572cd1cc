"""The async connection pool every adapter shares."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

Conn = AsyncConnection[Any]


def _prepare_threshold() -> int | None:
    """Server-side prepared statements, unless INTENT_DB_PREPARE=0 (old transaction poolers)."""
    raw = os.environ.get("INTENT_DB_PREPARE", "").strip().lower()
    return None if raw in {"0", "off", "false", "no"} else 5


async def open_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, name: str = "intent"
) -> AsyncConnectionPool[Conn]:
    """Autocommit connections: a lone statement is one round trip; work that needs more
    opens `conn.transaction()` explicitly, so it is visible where a transaction starts."""
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": _prepare_threshold()},
    )
    await pool.open(wait=True, timeout=30)
    return pool


@asynccontextmanager
async def connection(
    pool: AsyncConnectionPool[Conn], conn: Conn | None
) -> AsyncIterator[Conn]:
    """The caller's connection (inside its transaction) or a pooled one for this call only."""
    if conn is not None:
        yield conn
        return
    async with pool.connection() as pooled:
        yield pooled
