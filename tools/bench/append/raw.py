"""The RAW baseline: its table, its statements, its rows and its fold.

The table is the issue's, not a copy of intent.events: an event id, a text stream id, a
version, a type, the payload and metadata as jsonb, a recorded time, and the one unique
(stream_id, version) constraint. Rows carry the same facts as the Intent side's events
(the same decided events), their JSON serialised before anything is timed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from domain.contracts import Event
from pump.store.connections import Conn
from tools.bench.append.account import metadata_text, payload_text

RAW_SCHEMA = "bench_raw"
RAW_TABLE = f"{RAW_SCHEMA}.events"
CREATE_RAW = f"""
create table {RAW_TABLE} (
  id uuid primary key,
  stream_id text,
  version int,
  type text,
  payload jsonb,
  metadata jsonb,
  recorded_at timestamptz default now(),
  unique (stream_id, version)
)"""
_COLUMNS = "id, stream_id, version, type, payload, metadata"
INSERT_RAW = (
    f"insert into {RAW_TABLE} ({_COLUMNS}) values (%s, %s, %s, %s, %s::jsonb, %s::jsonb)"
)
COPY_RAW = f"copy {RAW_TABLE} ({_COLUMNS}) from stdin"
SELECT_RAW = f"select version, payload from {RAW_TABLE} where stream_id = %s order by version"
# W5's reference only: the same select, of the events after the Intent side's snapshot.
SELECT_RAW_TAIL = (
    f"select version, payload from {RAW_TABLE} where stream_id = %s and version > %s"
    " order by version"
)

RawRow = tuple[object, ...]  # (id, stream_id, version, type, payload text, metadata text)


def raw_rows(events: Sequence[Event]) -> list[RawRow]:
    """The events as RAW rows, in the INSERT's and the COPY's column order."""
    return [
        (e.event_id, str(e.stream.aggregate_id), e.version, e.event_type,
         payload_text(e), metadata_text(e))
        for e in events
    ]


def fold(rows: Sequence[tuple[int, dict[str, Any]]]) -> tuple[int, int, int]:
    """The RAW load's fold: the aggregate's evolve, as a plain loop on dicts. Returns the
    last version, the balance and the number of deposits."""
    balance = deposits = 0
    for _version, payload in rows:
        balance += payload["amount"]
        deposits += 1
    return (rows[-1][0] if rows else 0), balance, deposits


async def copy_rows(conn: Conn, rows: Sequence[RawRow]) -> None:
    """One COPY statement (on an autocommit connection: one transaction) of `rows`."""
    async with conn.cursor() as cur, cur.copy(COPY_RAW) as copy:
        for row in rows:
            await copy.write_row(row)


async def create_raw_table(pool: AsyncConnectionPool[Conn]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"create schema if not exists {RAW_SCHEMA}")
        await conn.execute(f"drop table if exists {RAW_TABLE}")
        await conn.execute(CREATE_RAW)


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


def json_bytes(rows: Sequence[RawRow]) -> tuple[float, float]:
    """The mean size of the rows' payload and metadata JSON, in bytes."""
    if not rows:
        return 0.0, 0.0
    payload = sum(len(str(row[4]).encode()) for row in rows) / len(rows)
    metadata = sum(len(str(row[5]).encode()) for row in rows) / len(rows)
    return payload, metadata
