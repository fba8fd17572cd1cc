"""Events in PostgreSQL: append with an expected version, load a stream.

An append is one statement, so one round trip: it inserts the batch only when the stream
has reached the expected version. Two writers that both pass that check still cannot both
win: the unique (tenant, aggregate type, aggregate id, version) constraint refuses the
second, and that refusal becomes a `ConcurrencyError`, as does a check that fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncRawCursor
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from domain.contracts import Event, Snapshot, StreamId
from domain.errors import BadInput, ConcurrencyError, InvalidEvent
from domain.registry import Registry
from pump.store.appends import APPEND_STREAMS, InvalidAppend, append_statement, streams_json
from pump.store.connections import Conn, connection

_STREAM_VERSION_KEY = "events_stream_version_key"
_EVENT_ID_KEY = "events_event_id_key"

_HEAD = """
select coalesce(max(version), 0) from intent.events
where tenant_id = %s and aggregate_type = %s and aggregate_id = %s
"""


def _event_json(alias: str = "") -> str:
    """A stored event as one JSON text in the envelope's shape: pydantic parses it in one
    pass (half the time of per-column values and a dict), and psycopg converts one column."""
    a = f"{alias}." if alias else ""
    return f"""json_build_object(
  'event_id', {a}event_id, 'event_type', {a}event_type, 'schema_version', {a}schema_version,
  'stream', json_build_object('tenant_id', {a}tenant_id, 'aggregate_type', {a}aggregate_type,
                              'aggregate_id', {a}aggregate_id),
  'version', {a}version, 'payload', {a}payload, 'metadata', {a}metadata,
  'position', {a}position, 'transaction_id', {a}transaction_id::text::bigint,
  'recorded_at', {a}recorded_at)::text as event"""


# What a reader selects to get events back: the position (for error messages) and the event.
EVENT_COLUMNS = f"position, {_event_json()}"

# The events after a version of several streams, in one statement: tenants, aggregate types,
# aggregate ids and the versions after which to read, as parallel arrays.
_LOAD_STREAMS = f"""
select e.position, {_event_json("e")}
from unnest(%s::uuid[], %s::text[], %s::uuid[], %s::int[]) as w(t, a, i, after)
join intent.events e
  on e.tenant_id = w.t and e.aggregate_type = w.a and e.aggregate_id = w.i
     and e.version > w.after
order by e.tenant_id, e.aggregate_type, e.aggregate_id, e.version
"""


class DuplicateEvent(BadInput):
    """An event id that is already stored: the same events appended a second time."""

    code = "duplicate_event"


@dataclass(frozen=True)
class AppendResult:
    stream: StreamId
    first_version: int
    last_version: int  # the stream's version after the append
    positions: tuple[int, ...]
    transaction_id: int | None


def event_from_row(row: dict[str, Any]) -> Event:
    """A row selected with EVENT_COLUMNS as an envelope (payload as stored: upcasting is the
    registry's job)."""
    try:
        return Event.model_validate_json(row["event"])
    except ValidationError as exc:
        raise InvalidEvent(
            f"stored event at position {row['position']} is not a valid envelope: "
            f"{exc.error_count()} problem(s): "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()),
            position=row["position"],
        ) from None


class PostgresEventStore:
    """Append and read streams. Pass `conn` to take part in the caller's transaction."""

    def __init__(self, pool: AsyncConnectionPool[Conn], registry: Registry | None = None):
        self._pool = pool
        self._registry = registry

    async def append(
        self,
        stream: StreamId,
        expected_version: int,
        events: Sequence[Event],
        *,
        snapshot: Snapshot | None = None,
        conn: Conn | None = None,
    ) -> AppendResult:
        """Append `events` as versions expected_version+1.. of `stream`, all or nothing, and
        `snapshot` (the state after them) in the same statement when given."""
        self._check(stream, expected_version, events)
        if not events:
            if snapshot is not None:
                raise InvalidAppend("a snapshot is written with the events it follows")
            return AppendResult(stream, expected_version + 1, expected_version, (), None)
        if snapshot is not None and (
            snapshot.stream != stream or snapshot.version != expected_version + len(events)
        ):
            raise InvalidAppend(
                f"the snapshot ({snapshot.stream} at version {snapshot.version}) is not of "
                f"{stream} after these events (version {expected_version + len(events)})"
            )
        sql, params = append_statement(stream, expected_version, events, snapshot)
        try:
            if conn is not None:
                rows = await _fetch(conn, sql, params)
            else:
                async with self._pool.connection() as pooled:
                    rows = await _fetch(pooled, sql, params)
        except pg_errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name
            if constraint == _STREAM_VERSION_KEY:
                raise ConcurrencyError(
                    str(stream), expected_version, await self._head(stream)
                ) from None
            if constraint == _EVENT_ID_KEY:
                raise DuplicateEvent(
                    f"an event with one of these ids is already stored: "
                    f"{', '.join(str(e.event_id) for e in events)}",
                    stream=str(stream),
                ) from None
            raise
        if not rows:  # the head was not at the expected version: nothing was written
            raise ConcurrencyError(str(stream), expected_version, await self._head(stream, conn))
        return AppendResult(
            stream=stream,
            first_version=expected_version + 1,
            last_version=expected_version + len(rows),
            positions=tuple(r[0] for r in rows),
            transaction_id=rows[0][1],
        )

    def _check(self, stream: StreamId, expected_version: int, events: Sequence[Event]) -> None:
        if expected_version < 0:
            raise InvalidAppend(f"expected version {expected_version} is negative")
        for offset, event in enumerate(events, start=1):
            if event.stream is not stream and event.stream != stream:  # `is`: decided events
                raise InvalidAppend(
                    f"event {event.event_id} belongs to {event.stream}, not to {stream}"
                )
            if event.version != expected_version + offset:
                raise InvalidAppend(
                    f"event {event.event_id} has version {event.version}, but appended after "
                    f"version {expected_version} it would be {expected_version + offset}"
                )
            if self._registry is not None:
                # Unknown types, stale schema versions and payloads that fail their model
                # are refused before anything is written.
                current = self._registry.event_types().get(event.event_type)
                if current is not None and event.schema_version != current.version:
                    raise InvalidAppend(
                        f"event {event.event_id} ({event.event_type}) has schema version "
                        f"{event.schema_version}; new events are written at the current "
                        f"version {current.version}"
                    )
                self._registry.load_event(event)
        ids = [e.event_id for e in events]
        if len(set(ids)) != len(ids):
            raise InvalidAppend("the same event id appears twice in one append")

    async def _head(self, stream: StreamId, conn: Conn | None = None) -> int | None:
        """The version for a conflict's message; None rather than hiding the conflict."""
        try:
            return await self.version(stream, conn=conn)
        except psycopg.Error:
            return None

    async def version(self, stream: StreamId, *, conn: Conn | None = None) -> int:
        """The stream's current version (0 when it has no events)."""
        async with connection(self._pool, conn) as c:
            cur = await c.execute(
                _HEAD, (stream.tenant_id, stream.aggregate_type, stream.aggregate_id)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def load(
        self,
        stream: StreamId,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        as_of: datetime | None = None,
        conn: Conn | None = None,
    ) -> list[Event]:
        """Events of `stream` with after_version < version <= to_version, recorded by `as_of`."""
        if as_of is not None and as_of.tzinfo is None:
            raise BadInput("as_of must carry a time zone")
        query = f"""
            select {EVENT_COLUMNS} from intent.events
            where tenant_id = %s and aggregate_type = %s and aggregate_id = %s
              and version > %s and version <= coalesce(%s, 2147483647)
              and (%s::timestamptz is null or recorded_at <= %s::timestamptz)
            order by version"""
        params = (
            stream.tenant_id, stream.aggregate_type, stream.aggregate_id,
            after_version, to_version, as_of, as_of,
        )
        async with connection(self._pool, conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            rows = await cur.fetchall()
        return [event_from_row(row) for row in rows]

    async def append_many(
        self,
        appends: Sequence[tuple[StreamId, int, Sequence[Event]]],
        *,
        conn: Conn | None = None,
    ) -> list[AppendResult]:
        """`append` for several streams in one statement, all or nothing: each stream's
        events become versions expected+1.. of it; when any stream is not at its expected
        version nothing is written and `ConcurrencyError` names that stream."""
        streams = [stream for stream, _, _ in appends]
        if len(set(streams)) != len(streams):
            raise InvalidAppend("the same stream appears twice in one append")
        for stream, expected, events in appends:
            self._check(stream, expected, events)
        ids = [e.event_id for _, _, events in appends for e in events]
        if len(set(ids)) != len(ids):
            raise InvalidAppend("the same event id appears twice in one append")
        work = [(stream, expected, events) for stream, expected, events in appends if events]
        if not work:
            return [AppendResult(s, x + 1, x, (), None) for s, x, _ in appends]
        body = streams_json(work)
        try:
            async with connection(self._pool, conn) as c:
                cur: AsyncRawCursor[tuple[Any, ...]] = AsyncRawCursor(c)
                await cur.execute(APPEND_STREAMS, (body,), binary=True)
                rows = await cur.fetchall()
        except pg_errors.UniqueViolation as exc:
            if exc.diag.constraint_name == _STREAM_VERSION_KEY:
                raise await self._conflict(work, None) from None
            if exc.diag.constraint_name == _EVENT_ID_KEY:
                raise DuplicateEvent(
                    f"an event with one of these ids is already stored: "
                    f"{', '.join(str(i) for i in ids)}",
                    streams=[str(s) for s, _, _ in work],
                ) from None
            raise
        if not rows:  # some stream was not at its expected version: nothing was written
            raise await self._conflict(work, conn)
        by_stream: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            by_stream.setdefault((row[2], row[3], row[4]), []).append(row)
        results = []
        for stream, expected, events in appends:
            mine = by_stream.get((stream.tenant_id, stream.aggregate_type, stream.aggregate_id))
            if not events or not mine:
                results.append(AppendResult(stream, expected + 1, expected, (), None))
                continue
            results.append(
                AppendResult(
                    stream=stream,
                    first_version=expected + 1,
                    last_version=expected + len(mine),
                    positions=tuple(r[0] for r in mine),
                    transaction_id=mine[0][1],
                )
            )
        return results

    async def _conflict(
        self, work: Sequence[tuple[StreamId, int, Sequence[Event]]], conn: Conn | None
    ) -> ConcurrencyError:
        """The first stream whose head is not at its expected version (its head found on
        `conn`, or on a pooled connection when the caller's transaction has failed)."""
        for stream, expected, _ in work:
            head = await self._head(stream, conn)
            if head != expected:
                return ConcurrencyError(str(stream), expected, head)
        stream, expected, _ = work[0]  # a writer that has since rolled back
        return ConcurrencyError(str(stream), expected, None)

    async def load_many(
        self, streams: Sequence[tuple[StreamId, int]], *, conn: Conn | None = None
    ) -> dict[StreamId, list[Event]]:
        """Every event after a version, for several streams in one query; each stream's
        events in version order (a stream with none maps to an empty list)."""
        found: dict[StreamId, list[Event]] = {stream: [] for stream, _ in streams}
        if not streams:
            return found
        async with connection(self._pool, conn) as c, c.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                _LOAD_STREAMS,
                (
                    [s.tenant_id for s, _ in streams],
                    [s.aggregate_type for s, _ in streams],
                    [s.aggregate_id for s, _ in streams],
                    [after for _, after in streams],
                ),
            )
            rows = await cur.fetchall()
        for row in rows:
            event = event_from_row(row)
            found[event.stream].append(event)
        return found

    async def version_at(
        self, stream: StreamId, as_of: datetime, *, conn: Conn | None = None
    ) -> int:
        """The stream's version as it stood at `as_of` (0 when it had no events yet)."""
        async with connection(self._pool, conn) as c:
            cur = await c.execute(
                "select coalesce(max(version), 0) from intent.events where tenant_id = %s"
                " and aggregate_type = %s and aggregate_id = %s and recorded_at <= %s",
                (stream.tenant_id, stream.aggregate_type, stream.aggregate_id, as_of),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _fetch(conn: Conn, sql: bytes, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
    """Run an append; its (position, transaction id) rows come back in binary, which spares
    parsing text on every append."""
    cur: AsyncRawCursor[tuple[Any, ...]] = AsyncRawCursor(conn)
    await cur.execute(sql, params, binary=True)
    return await cur.fetchall()
