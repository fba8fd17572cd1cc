"""The database a benchmark runs against: whether it can be used, and what it runs."""

from __future__ import annotations

from typing import Any

import psycopg

# What the reports name beside their figures: the version and the settings they depend on.
SETTINGS = (
    "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "wal_level",
    "shared_buffers", "max_connections",
)


class BenchError(Exception):
    """The database cannot be benchmarked; the message says why and what to do."""


async def server_facts(url: str) -> dict[str, Any]:
    """PostgreSQL's version and settings, over a connection of its own: fails fast (and
    clearly) on a database that cannot be reached or has not been migrated."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as exc:
        raise BenchError(f"cannot connect to the database: {str(exc).strip()}") from None
    async with conn:
        cur = await conn.execute("select to_regclass('intent.events') is not null")
        row = await cur.fetchone()
        if not row or not row[0]:
            raise BenchError(
                "the database has no intent.events table; migrate it first "
                "(intent db migrate --database-url URL)"
            )
        cur = await conn.execute(
            "select name, current_setting(name) from pg_settings where name = any(%s)"
            " order by name",
            (list(SETTINGS),),
        )
        settings = {name: value for name, value in await cur.fetchall()}
        cur = await conn.execute("show server_version")
        row = await cur.fetchone()
    return {"server_version": row[0] if row else None, "settings": settings}
