"""The asynchronous projection runner: each async projection follows the global feed from
its own checkpoint, exactly once.

One page is one transaction: take the projection's advisory lock (transaction-scoped, so it
works behind Supabase's pooler; not got: another runner owns the projection right now, so
this one passes), read the checkpoint, read the feed page after it (before writing anything,
see `read_page`), apply the events the projection reads, move the checkpoint past the whole
page. Effects and checkpoint commit together, so a crash at any point either keeps a page
entirely or not at all, and several runner processes can run side by side. The lock is one
per projection name rather than per version (`lock_key`), so that a rebuild's swap, or an
old runner still running the previous version during a deploy, never writes the live tables
at the same time as this one.

A failure (the handler raised, an op did not fit the table, the database refused a write)
rolls the page back. The runner then goes one event at a time to stop exactly at the failing
event, records the error in `intent.checkpoints.error` (event id, type, feed position,
message; in a transaction of its own, so it survives the rollback), logs it, and retries
that projection with backoff (1 s doubling to 60 s) while the others keep going. It resumes
by itself once the code or the data is fixed; the next committed page clears the error.

A projection declared as Rules that is far behind (a new one over an existing store, or a
runner that was down) catches up in SQL: while at least SQL_RANGE_MIN of its events wait, a
step folds up to SQL_RANGE_EVENTS feed events inside PostgreSQL (projections.set_fold), with
the same lock, checkpoint and transaction. Near the head it goes page by page through Python
as above. A range SQL cannot fold (older schema versions, a payload that does not cast) goes
through Python too, so a failure is still pinned to its event.

Inline projections are not run here: the worker applies them in its own transaction (see
projections.inline). A new inline projection, or one whose handler changed, is caught up by
`intent projections rebuild NAME`, which builds it from the feed and swaps it in while it
briefly blocks the worker's writes to it, and records its checkpoint. `inline_catch_up_needed`
finds inline projections without that checkpoint while the store holds events they read
(they may lack what happened before they were deployed); `intent projections run` names
them. Rebuilding once also silences it for one that existed from the first event on.

Commits of these pages are asynchronous (`synchronous_commit = off`, per transaction): a
crash may forget the last few pages, and then the checkpoint goes back with them, so they are
simply applied again. The events themselves are written durably by the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import TypeAdapter, ValidationError

from domain.contracts import Event
from domain.errors import InvalidEvent
from domain.registry import Registry
from projections.apply import Applier, ApplyResult, ProjectionError
from projections.metadata import Projection
from projections.set_fold import Range, SetFold, fold_range, next_range, unsupported
from pump import telemetry
from pump.database import Conn
from pump.feed import START, FeedPage, FeedPosition
from pump.logs import log_event

log = logging.getLogger("intent.projections")

PAGE_SIZE = 1000
# A projection declared as Rules that is this many of its events behind or more catches up
# in SQL, up to SQL_RANGE_EVENTS feed events a step; nearer the head it goes page by page
# through Python, where each page's span continues its events' traces.
SQL_RANGE_MIN = 500
SQL_RANGE_EVENTS = 25_000
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0

# The feed, as pump.feed.GlobalFeed reads it (same horizon, same order). The order names the
# table's columns, not the bigint the select list makes of transaction_id: only then can
# events_feed_idx serve it, rather than a sort of everything after the position on every
# page. A page comes back as one row: how many events it read, the position of the last
# one, and the events of the wanted types as JSON arrays (of CHUNK events each), which
# pydantic validates in one call per array (measured at well under half the Python time of
# decoding columns row by row).
_PAGE = """
with page as materialized (
  select e.transaction_id, e.position, {document} as doc
  from intent.events e
  where (e.transaction_id, e.position) > (%(txid)s::text::xid8, %(position)s)
    {horizon}
  order by e.transaction_id, e.position
  limit %(limit)s
), wanted as (
  select (row_number() over (order by transaction_id, position) - 1) / {chunk} as chunk,
         transaction_id, position, doc
  from page where doc is not null
)
select counted.n, last.txid, last.pos, chunks.texts
from (select count(*) as n from page) counted
left join lateral (
  select transaction_id::text::bigint as txid, position as pos from page
  order by transaction_id desc, position desc limit 1
) last on true
cross join (
  select coalesce(array_agg(text order by chunk), '{{}}') as texts
  from (
    select chunk, json_agg(doc order by transaction_id, position)::text as text
    from wanted group by chunk
  ) c
) chunks
"""
# Events per JSON array: a caller can decode a page a slice at a time, letting other tasks
# (the rebuild's writer) run in between.
CHUNK = 250
_DOCUMENT = """json_build_object(
    'event_id', e.event_id, 'event_type', e.event_type, 'schema_version', e.schema_version,
    'stream', json_build_object('tenant_id', e.tenant_id, 'aggregate_type', e.aggregate_type,
                                'aggregate_id', e.aggregate_id),
    'version', e.version, 'payload', e.payload, 'metadata', e.metadata,
    'position', e.position, 'transaction_id', e.transaction_id::text::bigint,
    'recorded_at', e.recorded_at)"""
_HORIZON = "and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())"


def _page_sql(*, horizon: bool, filtered: bool) -> bytes:
    document = _DOCUMENT
    if filtered:
        document = f"case when e.event_type = any(%(types)s::text[]) then {document} end"
    return _PAGE.format(
        document=document, horizon=_HORIZON if horizon else "", chunk=CHUNK
    ).encode()


# Without the horizon, everything committed and visible: only for a caller that has made
# sure no transaction still open can add to what it needs (the inline swap, which holds the
# live tables locked against the worker).
_PAGE_SQL = {
    (horizon, filtered): _page_sql(horizon=horizon, filtered=filtered)
    for horizon in (True, False)
    for filtered in (True, False)
}
_EVENTS = TypeAdapter(list[Event])


@dataclass(frozen=True)
class Page:
    events: list[Event]  # the events of the types asked for, in feed order
    next: FeedPosition  # after the last event read, whatever its type
    read: int  # events read, of every type


@dataclass(frozen=True)
class RawPage:
    """A page as fetched: the events still as JSON text, not validated yet."""

    chunks: list[str]  # JSON arrays of the events of the types asked for, in feed order
    next: FeedPosition
    read: int

    def decode(self) -> Page:
        events: list[Event] = []
        for chunk in self.chunks:
            events += decode_events(chunk)
        return Page(events, self.next, self.read)


def decode_events(chunk: str) -> list[Event]:
    """One JSON array of stored events, validated in one call."""
    try:
        return _EVENTS.validate_json(chunk)
    except ValidationError:
        raise _invalid_event(chunk) from None


async def fetch_page(
    conn: Conn,
    after: FeedPosition,
    *,
    limit: int,
    types: frozenset[str] | None = None,
    horizon: bool = True,
) -> RawPage:
    """The next `limit` feed events after `after`, undecoded; those of types not in `types`
    (None: every type) only move the page on. Read before writing in the transaction: once
    it has a transaction id, it holds its own horizon back."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    params: dict[str, Any] = {
        "txid": str(after.transaction_id), "position": after.position, "limit": limit,
    }
    if types is not None:
        params["types"] = sorted(types)
    cur = await conn.execute(_PAGE_SQL[horizon, types is not None], params)
    row = await cur.fetchone()
    if row is None or not row[0]:
        return RawPage([], after, 0)
    read, txid, position, chunks = row
    return RawPage(list(chunks), FeedPosition(int(txid), int(position)), int(read))


async def read_page(
    conn: Conn,
    after: FeedPosition,
    *,
    limit: int,
    types: frozenset[str] | None = None,
    horizon: bool = True,
) -> Page:
    """`fetch_page`, decoded."""
    raw = await fetch_page(conn, after, limit=limit, types=types, horizon=horizon)
    return raw.decode() if raw.read else Page([], after, 0)


def _invalid_event(documents: str) -> InvalidEvent:
    """The first event of the page that is not a valid envelope, named by its position."""
    for document in json.loads(documents):
        try:
            Event.model_validate(document)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            return InvalidEvent(
                f"stored event {document.get('event_id')} (position "
                f"{document.get('transaction_id')}:{document.get('position')}) is not a valid "
                f"envelope: {problems}",
                position=document.get("position"),
            )
    return InvalidEvent("a stored event of the page is not a valid envelope")


async def read_feed(
    conn: Conn, after: FeedPosition, *, limit: int, horizon: bool = True
) -> FeedPage:
    """`read_page` of every type, shaped as GlobalFeed.read's answer."""
    page = await read_page(conn, after, limit=limit, horizon=horizon)
    return FeedPage(events=page.events, next=page.next)


# Several catch-ups may overlap in one process: the first raises the threshold, the last
# one to finish puts it back.
_collections: dict[str, Any] = {"raised": 0, "before": gc.get_threshold()}


@contextlib.contextmanager
def fewer_collections(threshold: int = 20_000) -> Iterator[None]:
    """Run the cyclic garbage collector rarely while pages are applied.

    A page allocates tens of thousands of small objects (envelopes, payloads, ops, row
    writes) that all die when it is written, by reference counting: nothing on this path
    makes reference cycles. At the default threshold (700 allocations) the collector runs
    dozens of times per page and was measured at about a quarter of the catch-up's time."""
    if _collections["raised"] == 0:
        before = gc.get_threshold()
        _collections["before"] = before
        gc.set_threshold(max(before[0], threshold), *before[1:])
    _collections["raised"] += 1
    try:
        yield
    finally:
        _collections["raised"] -= 1
        if _collections["raised"] == 0:
            gc.set_threshold(*_collections["before"])


# -- checkpoints ----------------------------------------------------------------------------


def lock_key(projection: Projection) -> int:
    """The projection's advisory-lock key: one per projection (not per version), so that two
    versions of a projection never write its live tables at the same time."""
    name = f"intent.projection:{projection.schema_name}.{projection.name}".encode()
    return int.from_bytes(blake2b(name, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class Checkpoint:
    position: FeedPosition
    error: dict[str, Any] | None
    exists: bool


async def load_checkpoint(conn: Conn, consumer: str) -> Checkpoint:
    cur = await conn.execute(
        "select transaction_id::text::bigint, position, error from intent.checkpoints"
        " where consumer = %s",
        (consumer,),
    )
    row = await cur.fetchone()
    if row is None:
        return Checkpoint(START, None, exists=False)
    return Checkpoint(FeedPosition(int(row[0]), int(row[1])), row[2], exists=True)


async def save_checkpoint(conn: Conn, consumer: str, position: FeedPosition) -> None:
    """Move the checkpoint (and clear its error): in the transaction of the page's effects."""
    await conn.execute(
        "insert into intent.checkpoints (consumer, transaction_id, position, error)"
        " values (%s, %s::text::xid8, %s, null) on conflict (consumer) do update"
        " set transaction_id = excluded.transaction_id, position = excluded.position,"
        " error = null, updated_at = now()",
        (consumer, str(position.transaction_id), position.position),
    )


async def record_error(conn: Conn, consumer: str, error: dict[str, Any]) -> None:
    """Note the error on the checkpoint without moving it."""
    await conn.execute(
        "insert into intent.checkpoints (consumer, error) values (%s, %s)"
        " on conflict (consumer) do update set error = excluded.error, updated_at = now()",
        (consumer, Jsonb(error)),
    )


async def tables_hold_rows(conn: Conn, projection: Projection) -> bool:
    for table in projection.tables:
        query = sql.SQL("select exists (select from {}.{})").format(
            sql.Identifier(projection.schema_name), sql.Identifier(table.name)
        )
        row = await (await conn.execute(query)).fetchone()
        if row and row[0]:
            return True
    return False


async def inline_catch_up_needed(
    pool: AsyncConnectionPool[Conn], projections: Iterable[Projection]
) -> list[Projection]:
    """Inline projections never rebuilt (no checkpoint) while the store holds events they
    read: they lack whatever happened before they were deployed."""
    needed = []
    async with pool.connection() as conn:
        for projection in projections:
            if projection.mode != "inline":
                continue
            if (await load_checkpoint(conn, projection.consumer)).exists:
                continue
            cur = await conn.execute(
                "select exists (select from intent.events where event_type = any(%s))",
                (list(projection.reads),),
            )
            row = await cur.fetchone()
            if row and row[0]:
                needed.append(projection)
    return needed


# -- one page -------------------------------------------------------------------------------


class NeedsRebuildError(ProjectionError):
    """The tables hold rows but this version's checkpoint is at the start."""

    kind = "needs_rebuild"


StepStatus = Literal["applied", "idle", "busy", "failed"]


@dataclass(frozen=True)
class StepResult:
    status: StepStatus
    position: FeedPosition | None = None  # the checkpoint after the step
    page_end: FeedPosition | None = None  # the end of the page read (also when it failed)
    events: int = 0  # feed events read (of every type)
    applied: ApplyResult | None = None
    error: dict[str, Any] | None = None


def error_record(exc: BaseException, projection: Projection, events: Sequence[Event],
                 attempts: int) -> dict[str, Any]:
    """What goes into intent.checkpoints.error: enough to find the event and the cause."""
    if isinstance(exc, ProjectionError):
        record = exc.as_json()
    else:
        record = {"kind": type(exc).__name__, "message": str(exc).strip(),
                  "projection": projection.name}
    if record.get("event_id") is None and len(events) == 1:
        (event,) = events  # one event per page: the failure is this event's
        record.update(event_id=str(event.event_id), event_type=event.event_type,
                      transaction_id=event.transaction_id, position=event.position)
    record["attempts"] = attempts
    record["failed_at"] = datetime.now(UTC).isoformat()
    return record


class ProjectionRunner:
    """Follows the feed for async projections. `step` is one page of one projection (what
    tests drive); `run` loops over all of them until `stop` is set. `sql_range_events`: the
    most feed events one SQL catch-up step folds (default SQL_RANGE_EVENTS; 0: never)."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        projections: Iterable[Projection],
        *,
        registry: Registry | None = None,
        page_size: int = PAGE_SIZE,
        poll_interval: float = 0.25,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
        sql_range_events: int | None = None,
    ) -> None:
        self._pool = pool
        self.projections = [p for p in projections if p.mode == "async"]
        self._appliers = {p.name: Applier(p, registry=registry) for p in self.projections}
        # Projections declared as Rules catch up in SQL when far behind (set_fold).
        self._folds = {
            name: SetFold(applier) for name, applier in self._appliers.items()
            if sql_range_events != 0 and unsupported(applier.projection) is None
        }
        self._page_size = page_size
        self._poll_interval = poll_interval
        self._backoff_first = backoff_first
        self._backoff_max = backoff_max
        self.applied: dict[str, int] = {p.name: 0 for p in self.projections}
        self.sql_ranges = 0  # steps folded in SQL
        self._sql_range = sql_range_events if sql_range_events is not None else SQL_RANGE_EVENTS
        self._python_until: dict[str, FeedPosition] = {}

    async def step(self, projection: Projection, *, limit: int | None = None) -> StepResult:
        """One page in one transaction; a failure is returned (already rolled back), not
        raised, with the page it happened in."""
        applier = self._appliers[projection.name]
        events: list[Event] = []
        page_end: FeedPosition | None = None
        read = 0
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = await conn.execute("select pg_try_advisory_xact_lock(%s)",
                                         (lock_key(projection),))
                got = await cur.fetchone()
                if not got or not got[0]:
                    return StepResult("busy")
                checkpoint = await load_checkpoint(conn, projection.consumer)
                if checkpoint.position == START and await tables_hold_rows(conn, projection):
                    raise NeedsRebuildError(
                        f"its tables hold rows but checkpoint {projection.consumer} is at the "
                        "start (were they written by another version?): run `intent "
                        f"projections rebuild {projection.name}`",
                        projection=projection.name,
                    )
                await conn.execute("set local synchronous_commit = off")
                fold = self._folds.get(projection.name) if limit is None else None
                if fold is not None:
                    folded = await self._step_in_sql(conn, fold, checkpoint.position)
                    if folded is not None:
                        return folded
                page = await read_page(conn, checkpoint.position,
                                       limit=limit or self._page_size,
                                       types=applier.reads)
                events, page_end, read = page.events, page.next, page.read
                if not read:
                    return StepResult("idle", position=checkpoint.position)
                result = await self._apply(applier, conn, events)
                await save_checkpoint(conn, projection.consumer, page.next)
        except Exception as exc:  # anything: this projection stops, the others go on
            return StepResult("failed", page_end=page_end, events=read,
                              error=error_record(exc, projection, events, 1))
        if result.skipped:
            log.warning("projection %s: %d row(s) already held newer events (replayed events "
                        "are no-ops)", projection.name, result.skipped)
        self.applied[projection.name] += result.handled
        return StepResult("applied", position=page.next, page_end=page.next,
                          events=read, applied=result)

    async def _step_in_sql(self, conn: Conn, fold: SetFold,
                           after: FeedPosition) -> StepResult | None:
        """The step as one SQL-folded range when enough of the projection's events wait;
        None: take a Python page instead (and keep to Python up to the range's end, before
        the range is looked at again)."""
        name = fold.projection.name
        if after < self._python_until.get(name, START):
            return None
        upto = await next_range(conn, after, fold, limit=self._sql_range)
        if upto is None:
            return StepResult("idle", position=after)
        if upto.handled < SQL_RANGE_MIN or not await self._fold(fold, conn, after, upto):
            self._python_until[name] = upto.end
            return None
        await save_checkpoint(conn, fold.projection.consumer, upto.end)
        self.applied[name] += upto.handled
        self.sql_ranges += 1
        return StepResult("applied", position=upto.end, page_end=upto.end, events=upto.events,
                          applied=ApplyResult(events=upto.events, handled=upto.handled, ops=0,
                                              rows=0, written=0, skipped=0,
                                              statements=len(fold.tables)))

    async def _fold(self, fold: SetFold, conn: Conn, after: FeedPosition, upto: Range) -> bool:
        """A range folded in SQL, in a span when tracing (one for the range: its events are
        never in Python, so it links to none of their traces)."""
        if not telemetry.tracing():
            return await fold_range(conn, fold, after, upto)
        name = fold.projection.name
        with telemetry.span_over(
            f"intent.project {name}", (),
            {"intent.projection": name, "intent.projection.mode": "async",
             "intent.events": upto.handled, "intent.fold": "sql"},
        ):
            return await fold_range(conn, fold, after, upto)

    async def _apply(self, applier: Applier, conn: Conn, events: list[Event]) -> ApplyResult:
        """The page, in a span when tracing: child of its first event's trace context,
        linked to the other events' traces."""
        if not telemetry.tracing() or not events:
            return await applier.apply(conn, events)
        name = applier.projection.name
        with telemetry.span_over(
            f"intent.project {name}", (e.metadata.traceparent for e in events),
            {"intent.projection": name, "intent.projection.mode": "async",
             "intent.events": len(events)},
        ):
            return await applier.apply(conn, events)

    async def catch_up(self, projection: Projection) -> FeedPosition | None:
        """Apply pages until the projection is at the head of the feed (for tests and tools);
        raises on a failure instead of retrying."""
        position = None
        while True:
            result = await self.step(projection)
            if result.status == "failed":
                raise RuntimeError(f"projection {projection.name} failed: {result.error}")
            if result.status != "applied":
                return position
            position = result.position

    async def run(self, stop: asyncio.Event) -> None:
        if not self.projections:
            return
        names = ", ".join(p.name for p in self.projections)
        log_event(log, "process.start", f"projection runner following the feed for {names}",
                  process="projections", projections=[p.name for p in self.projections],
                  tracing=telemetry.tracing(), metrics=telemetry.metering())
        samplers = []
        if telemetry.metering():
            from pump.gauges import every, sample_lag

            consumers = [p.consumer for p in self.projections]
            samplers.append(every(stop, lambda: sample_lag(self._pool, consumers)))
        with fewer_collections():
            await asyncio.gather(*(self._follow(p, stop) for p in self.projections), *samplers)
        log_event(log, "process.stop", "projection runner stopped", process="projections",
                  applied=dict(self.applied))

    async def _follow(self, projection: Projection, stop: asyncio.Event) -> None:
        delay = self._backoff_first
        attempts = 0
        careful_until: FeedPosition | None = None  # one event per page up to here
        while not stop.is_set():
            careful = careful_until is not None
            result = await self.step(projection, limit=1 if careful else None)
            if result.status == "failed":
                pinned = careful or result.events <= 1 or result.page_end is None
                if not pinned:
                    # Find the failing event: redo the page one event at a time.
                    careful_until = result.page_end
                    continue
                attempts += 1
                error = dict(result.error or {}, attempts=attempts, retry_in_seconds=delay)
                await self._record(projection, error)
                log_event(
                    log, "projection.error",
                    f"projection {projection.name} stopped at event {error.get('event_id')} "
                    f"({error.get('event_type')}, position {error.get('transaction_id')}:"
                    f"{error.get('position')}): {error.get('message')}; "
                    f"retrying in {delay:.0f} s",
                    level=logging.ERROR, projection=projection.name,
                    event_id=error.get("event_id"), event_type=error.get("event_type"),
                    error=error.get("message"), attempts=attempts, retry_in_seconds=delay,
                )
                await _sleep(stop, delay)
                delay = min(delay * 2, self._backoff_max)
                continue
            if result.status == "applied":
                if attempts:
                    log.info("projection %s resumed after %d failed attempt(s)",
                             projection.name, attempts)
                attempts, delay = 0, self._backoff_first
                if careful_until is not None and (
                    result.position is None or result.position >= careful_until
                ):
                    careful_until = None
                if result.events >= (1 if careful else self._page_size):
                    continue  # more is waiting
            elif careful_until is not None and result.status == "idle":
                careful_until = None
            await _sleep(stop, self._poll_interval)

    async def _record(self, projection: Projection, error: dict[str, Any]) -> None:
        try:
            async with self._pool.connection() as conn:
                await record_error(conn, projection.consumer, error)
        except Exception as exc:  # the database may be the problem: the log still has it
            log.error("projection %s: could not record the error: %s", projection.name, exc)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
