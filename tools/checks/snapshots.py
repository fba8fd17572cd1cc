"""Snapshot verification: does each aggregate's newest snapshot say what its events say?

A snapshot is a cache of a fold, and a wrong one is worse than none: every load starts from
it, and every later snapshot is taken from a state built on it. So each aggregate that has
snapshots is rehydrated twice — from scratch (every event, upcast) and from its newest
snapshot plus the later events — and the two are compared at the snapshot's version and at
the stream's head. Comparing at the snapshot's version pins the snapshot itself down even
when later events happen to overwrite the difference.

What is found:

- mismatch: the snapshot parses but its state is not the fold of its events;
- corrupt: the snapshot does not parse as the aggregate's state model (or cannot be
  upcast), or the events after it do not apply on it;
- beyond_stream: the snapshot claims a version the stream has not reached;
- stream_unreadable: the events themselves cannot be folded (not a snapshot problem, and
  not repairable here).

Skipped (reported, not failures): snapshots of aggregate types the code does not know, and
snapshots of a newer state schema than the code's (a newer deployment wrote them; the load
path passes over them, and rewriting them would downgrade them).

Repair rewrites a bad snapshot from the from-scratch state at the same version, in one
transaction with dropping it and any snapshot above it (those were taken from states built
on the bad one); a snapshot beyond the stream is only dropped. Only the newest snapshot of
each aggregate is verified: older ones serve as-of loads alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.aggregate import Aggregate
from domain.contracts import Event, Snapshot, StreamId
from domain.decider import Loaded, evolve_all, rehydrate, take_snapshot
from domain.errors import InvalidEvent, InvalidSnapshot, UnknownAggregateType
from domain.registry import Registry
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from pump.store.snapshots import PostgresSnapshotStore

MISMATCH = "mismatch"
CORRUPT = "corrupt"
BEYOND_STREAM = "beyond_stream"
STREAM_UNREADABLE = "stream_unreadable"
REPAIRABLE = frozenset({MISMATCH, CORRUPT, BEYOND_STREAM})

# Streams loaded per round trip: bounded, because whole streams are held in memory.
CHUNK = 50


@dataclass(frozen=True)
class Outcome:
    """One aggregate's newest snapshot, judged. `problem` None: the snapshot is right."""

    stream: StreamId
    snapshot_version: int
    snapshot_schema_version: int
    stream_version: int | None  # None when the events could not be read
    problem: str | None = None
    detail: str = ""
    fields: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def repairable(self) -> bool:
        return self.problem in REPAIRABLE

    def as_json(self) -> dict[str, Any]:
        return {
            "tenant_id": str(self.stream.tenant_id),
            "aggregate_type": self.stream.aggregate_type,
            "aggregate_id": str(self.stream.aggregate_id),
            "snapshot_version": self.snapshot_version,
            "snapshot_schema_version": self.snapshot_schema_version,
            "stream_version": self.stream_version,
            "problem": self.problem,
            "skipped": self.skipped,
            "detail": self.detail,
            "fields": list(self.fields),
        }


@dataclass
class VerifyReport:
    checked: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    repaired: list[Outcome] = field(default_factory=list)  # as found, before the repair
    unrepaired: list[Outcome] = field(default_factory=list)  # still wrong afterwards

    @property
    def problems(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem is not None]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.skipped is not None]

    @property
    def ok(self) -> int:
        return sum(1 for o in self.outcomes if o.problem is None and o.skipped is None)

    def failed(self, *, repair: bool) -> bool:
        """Exit status: any problem fails, unless --repair fixed every one of them."""
        if not self.problems:
            return False
        return not repair or bool(self.unrepaired)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "ok": self.ok,
            "problems": [o.as_json() for o in self.problems],
            "skipped": [o.as_json() for o in self.skipped],
            "repaired": [o.as_json() for o in self.repaired],
            "unrepaired": [o.as_json() for o in self.unrepaired],
        }


# -- judging one stream (pure) ------------------------------------------------------------


def _differing_fields(left: dict[str, Any], right: dict[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k)))


def _mismatch(
    scratch_at: Loaded[Any], restored: Loaded[Any], scratch: Loaded[Any], continued: Loaded[Any],
) -> tuple[tuple[str, ...], str]:
    """The fields in which the snapshot's state differs from the events' fold, at the
    snapshot's version first, else at the head; and where ("snapshot" or "head")."""
    at_snapshot = _differing_fields(
        scratch_at.state.model_dump(mode="json"), restored.state.model_dump(mode="json")
    )
    if at_snapshot:
        return at_snapshot, "snapshot"
    at_head = _differing_fields(
        scratch.state.model_dump(mode="json"), continued.state.model_dump(mode="json")
    )
    return at_head, "head"


def judge(
    registry: Registry, snapshot: Snapshot, events: Sequence[Event]
) -> Outcome:
    """Compare the snapshot with the fold of `events` (the whole stream, in order)."""
    stream = snapshot.stream
    head = events[-1].version if events else 0

    def outcome(
        *,
        problem: str | None = None,
        skipped: str | None = None,
        detail: str = "",
        fields: tuple[str, ...] = (),
    ) -> Outcome:
        return Outcome(
            stream=stream, snapshot_version=snapshot.version,
            snapshot_schema_version=snapshot.schema_version, stream_version=head,
            problem=problem, skipped=skipped, detail=detail, fields=fields,
        )

    try:
        aggregate = registry.aggregate_type(stream.aggregate_type)
    except UnknownAggregateType:
        return outcome(skipped="unknown aggregate type",
                       detail=f"{stream.aggregate_type} is not in the registry")
    if snapshot.schema_version > aggregate.state_schema_version:
        return outcome(
            skipped="newer state schema",
            detail=f"state schema v{snapshot.schema_version}, the code reads up to "
            f"v{aggregate.state_schema_version}",
        )
    if snapshot.version > head:
        return outcome(
            problem=BEYOND_STREAM,
            detail=f"snapshot at version {snapshot.version}, but the stream has {head} events",
        )
    covered = [e for e in events if e.version <= snapshot.version]
    later = [e for e in events if e.version > snapshot.version]
    try:
        scratch_at = rehydrate(registry, aggregate, stream, None, covered)
        scratch = evolve_all(registry, aggregate, scratch_at, later)
    except Exception as exc:  # whatever the fold trips on, the stream is the problem
        return outcome(problem=STREAM_UNREADABLE,
                       detail=f"the events do not fold: {exc}")
    try:
        restored = rehydrate(registry, aggregate, stream, snapshot, [])
    except InvalidSnapshot as exc:
        return outcome(problem=CORRUPT,
                       detail=f"does not parse as {aggregate.state_model.__name__}: {exc}")
    try:
        continued = evolve_all(registry, aggregate, restored, later)
    except Exception as exc:  # the snapshot's state cannot take the events that follow
        return outcome(problem=CORRUPT,
                       detail=f"the events after it do not apply on it: {exc}")
    fields, where = _mismatch(scratch_at, restored, scratch, continued)
    if fields:
        at = (f"at version {snapshot.version}" if where == "snapshot"
              else f"at the head (version {head})")
        return outcome(problem=MISMATCH, fields=fields,
                       detail=f"differs from the events' fold {at} in {', '.join(fields)}")
    return outcome()


# -- the database -------------------------------------------------------------------------

_STREAMS = """
select tenant_id, aggregate_type, aggregate_id from (
  select distinct tenant_id, aggregate_type, aggregate_id from intent.snapshots
  where (%(type)s::text is null or aggregate_type = %(type)s::text)
    and (%(tenant)s::uuid is null or tenant_id = %(tenant)s::uuid)
) s
order by case when %(sample)s::int is null then 0 else random() end,
         tenant_id, aggregate_type, aggregate_id
limit %(sample)s::int
"""


async def snapshotted_streams(
    pool: AsyncConnectionPool[Conn],
    *,
    aggregate_type: str | None = None,
    tenant_id: UUID | None = None,
    sample: int | None = None,
) -> list[StreamId]:
    """Every aggregate that has a snapshot (or a random sample of them)."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _STREAMS, {"type": aggregate_type, "tenant": tenant_id, "sample": sample}
        )
        rows = await cur.fetchall()
    return [StreamId.model_validate(row) for row in rows]


async def _load_chunk(
    pool: AsyncConnectionPool[Conn], streams: Sequence[StreamId]
) -> tuple[dict[StreamId, Snapshot], dict[StreamId, list[Event] | InvalidEvent]]:
    """Newest snapshots and whole streams, read in one snapshot of the database so that a
    writer appending meanwhile cannot make them disagree."""
    events_store = PostgresEventStore(pool)
    snapshot_store = PostgresSnapshotStore(pool)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("set transaction isolation level repeatable read, read only")
        snapshots = await snapshot_store.latest_many(streams, conn=conn)
        found: dict[StreamId, list[Event] | InvalidEvent] = {}
        try:
            found.update(await events_store.load_many([(s, 0) for s in streams], conn=conn))
        except InvalidEvent:  # one stored envelope is broken: find whose, stream by stream
            for stream in streams:
                try:
                    found[stream] = await events_store.load(stream, conn=conn)
                except InvalidEvent as exc:
                    found[stream] = exc
    return snapshots, found


async def verify_streams(
    pool: AsyncConnectionPool[Conn],
    registry: Registry,
    streams: Sequence[StreamId],
    *,
    on_checked: Callable[[int], None] | None = None,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for start in range(0, len(streams), CHUNK):
        chunk = streams[start : start + CHUNK]
        snapshots, events = await _load_chunk(pool, chunk)
        for stream in chunk:
            snapshot = snapshots.get(stream)
            if snapshot is None:  # removed since it was listed
                continue
            loaded = events[stream]
            if isinstance(loaded, InvalidEvent):
                outcomes.append(Outcome(
                    stream=stream, snapshot_version=snapshot.version,
                    snapshot_schema_version=snapshot.schema_version, stream_version=None,
                    problem=STREAM_UNREADABLE, detail=f"a stored event is unreadable: {loaded}",
                ))
            else:
                outcomes.append(judge(registry, snapshot, loaded))
        if on_checked is not None:
            on_checked(len(chunk))
    return outcomes


async def repair(
    pool: AsyncConnectionPool[Conn], registry: Registry, outcome: Outcome
) -> None:
    """Rewrite one bad snapshot from the events, in one transaction (see the module's
    docstring); the events are read again inside it."""
    if not outcome.repairable:
        raise ValueError(f"{outcome.problem} cannot be repaired from the snapshot side")
    stream = outcome.stream
    aggregate: type[Aggregate[Any]] = registry.aggregate_type(stream.aggregate_type)
    events_store = PostgresEventStore(pool)
    snapshot_store = PostgresSnapshotStore(pool)
    async with pool.connection() as conn, conn.transaction():
        events = await events_store.load(stream, to_version=outcome.snapshot_version, conn=conn)
        await snapshot_store.delete_from(stream, outcome.snapshot_version, conn=conn)
        if events and events[-1].version == outcome.snapshot_version:
            loaded: Loaded[Any] = rehydrate(registry, aggregate, stream, None, events)
            await snapshot_store.save(take_snapshot(aggregate, loaded), conn=conn)


async def verify_snapshots(
    pool: AsyncConnectionPool[Conn],
    registry: Registry,
    *,
    aggregate_type: str | None = None,
    tenant_id: UUID | None = None,
    sample: int | None = None,
    fix: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_checked: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Verify (and with `fix`, repair, then verify again) the newest snapshots."""
    streams = await snapshotted_streams(
        pool, aggregate_type=aggregate_type, tenant_id=tenant_id, sample=sample
    )
    if on_total is not None:
        on_total(len(streams))
    report = VerifyReport(checked=len(streams))
    report.outcomes = await verify_streams(pool, registry, streams, on_checked=on_checked)
    if not fix:
        return report
    for outcome in report.problems:
        if outcome.repairable:
            await repair(pool, registry, outcome)
    rechecked = {
        o.stream: o
        for o in await verify_streams(pool, registry, [o.stream for o in report.problems])
    }
    for outcome in report.problems:
        after = rechecked.get(outcome.stream)
        if after is not None and after.problem is not None:
            report.unrepaired.append(after)
        else:
            report.repaired.append(outcome)
    return report


def dumps(report: VerifyReport) -> str:
    return json.dumps(report.as_json(), indent=2)
