"""Reading one stream for a fold: its newest usable snapshot and the first page of the
events after it in one round trip, further pages only for long tails.

Each page is one JSON text built by PostgreSQL (see domain/replay.py for its shape), so the
client decodes a page in one pass instead of converting columns row by row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncRawCursor

from domain.contracts import Snapshot, StreamId
from pump.store.connections import Conn

# Events per page: a 10,000-event replay is two round trips, and a page's text stays a
# few megabytes at most.
PAGE = 8192
_NO_LIMIT = 2_147_483_647

# $1 tenant, $2 aggregate type, $3 aggregate id, $4 the last version to read, $5 page size,
# $6 read after this version (without a snapshot), and in the first read $7 whether to use
# a snapshot.
#
# A page's JSON is put together as text: type names are dotted lower-case words (a check on
# intent.events), so they need no escaping, and a payload's text is JSON already. That is
# about half the server's time of json_build_object and json_agg. The fold checks that the
# versions follow one another, so an order the aggregate's ORDER BY did not keep could not
# pass unnoticed.
_PAGE = """
  select '[' || string_agg(row, ',' order by version) || ']' as page, count(*) as events
  from (
    select e.version, concat('{{"v":', e.version, ',"k":"', e.event_type, '@',
                             e.schema_version, '","p":', e.payload::text, '}}') as row
    from intent.events e
    where e.tenant_id = $1 and e.aggregate_type = $2 and e.aggregate_id = $3
      and e.version > {after} and e.version <= $4
    order by e.version
    limit $5
  ) as rows"""
_FIRST = f"""
with s as (
  select version, schema_version, state, created_at from intent.snapshots
  where $7 and tenant_id = $1 and aggregate_type = $2 and aggregate_id = $3
    and version <= $4
  order by version desc
  limit 1
), page as ({_PAGE.format(after="coalesce((select version from s), $6)")}
)
select s.version, s.schema_version, s.state, s.created_at, page.page, page.events
from page left join s on true
""".encode()
_NEXT = _PAGE.format(after="$6").encode()


@dataclass(frozen=True)
class StreamRead:
    """Where a fold starts (the snapshot, if one was used) and the first page after it."""

    snapshot: Snapshot | None
    first_page: str | None  # None: no events after the snapshot (up to the version asked)
    full: bool  # the first page was full: there may be more


async def read_start(
    conn: Conn,
    stream: StreamId,
    *,
    to_version: int | None,
    use_snapshot: bool,
) -> StreamRead:
    """The newest snapshot at or below `to_version` (when `use_snapshot`) and the first page
    of events after it (after version 0 without one)."""
    row = await _one(conn, _FIRST, (*_params(stream, to_version, 0), use_snapshot))
    snapshot = None
    if row[0] is not None:
        snapshot = Snapshot(
            stream=stream, version=row[0], schema_version=row[1], state=row[2],
            created_at=row[3],
        )
    return StreamRead(snapshot=snapshot, first_page=row[4], full=row[5] == PAGE)


async def next_pages(
    conn: Conn, stream: StreamId, *, after: int, to_version: int | None
) -> AsyncIterator[str]:
    """The pages after version `after`, one round trip each, until one is not full."""
    while True:
        row = await _one(conn, _NEXT, _params(stream, to_version, after))
        if row[0] is None:
            return
        yield row[0]
        if row[1] < PAGE:
            return
        after += row[1]


def _params(stream: StreamId, to_version: int | None, after: int) -> tuple[Any, ...]:
    return (
        stream.tenant_id, stream.aggregate_type, stream.aggregate_id,
        _NO_LIMIT if to_version is None else to_version, PAGE, after,
    )


async def _one(conn: Conn, sql: bytes, params: tuple[Any, ...]) -> tuple[Any, ...]:
    """The statement's one row ($n placeholders, sent as they are: see appends.py)."""
    cur: AsyncRawCursor[tuple[Any, ...]] = AsyncRawCursor(conn)
    await cur.execute(sql, params)
    row = await cur.fetchone()
    assert row is not None  # both statements always return exactly one row
    return row
