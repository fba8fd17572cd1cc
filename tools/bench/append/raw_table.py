"""The raw baselines' table: `bench_raw.events`, `like intent.events including all` (the
same columns, defaults, identity, constraints and indexes), created for a run and dropped
after it."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tools.bench.workload import RAW_COLUMNS

RAW_SCHEMA = "bench_raw"
RAW_TABLE = f"{RAW_SCHEMA}.events"
_COLUMNS = ", ".join(RAW_COLUMNS)
INSERT_RAW = (
    f"insert into {RAW_TABLE} ({_COLUMNS}) values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, "
    "%s::jsonb)"
)
COPY_RAW = f"copy {RAW_TABLE} ({_COLUMNS}) from stdin"


async def create_raw_table(pool: AsyncConnectionPool[Conn]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"create schema if not exists {RAW_SCHEMA}")
        await conn.execute(f"drop table if exists {RAW_TABLE}")
        await conn.execute(f"create table {RAW_TABLE} (like intent.events including all)")


async def drop_raw_table(pool: AsyncConnectionPool[Conn]) -> None:
    """The table, and its schema when nothing else is left in it."""
    async with pool.connection() as conn:
        await conn.execute(f"drop table if exists {RAW_TABLE}")
        cur = await conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s",
            (RAW_SCHEMA,),
        )
        row = await cur.fetchone()
        if row and row[0] == 0:
            await conn.execute(f"drop schema if exists {RAW_SCHEMA}")
