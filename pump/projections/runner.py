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
pump.projections.inline). A new inline projection, or one whose handler changed, is caught up by
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
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg_pool import AsyncConnectionPool

from domain.contracts import Event
from domain.feed import START, FeedPosition
from domain.registry import Registry
from projections.apply import Applier
from projections.errors import ProjectionError
from projections.metadata import Projection
from projections.set_fold import Range, SetFold, fold_range, next_range, unsupported
from projections.writes import ApplyResult
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.projections.checkpoints import (
    load_checkpoint,
    lock_key,
    record_error,
    save_checkpoint,
    tables_hold_rows,
)
from pump.projections.pages import fewer_collections, read_page
from pump.store.connections import Conn

log = logging.getLogger("intent.projections")

PAGE_SIZE = 1000
# A projection declared as Rules that is this many of its events behind or more catches up
# in SQL, up to SQL_RANGE_EVENTS feed events a step; nearer the head it goes page by page
# through Python, where each page's span continues its events' traces.
SQL_RANGE_MIN = 500
SQL_RANGE_EVENTS = 25_000
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0


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
        registry: Registry,
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
        name = fold.projection.name
        with telemetry.span(
            f"intent.project {name}",
            {"intent.projection": name, "intent.projection.mode": "async",
             "intent.events": upto.handled, "intent.fold": "sql"},
        ):
            return await fold_range(conn, fold, after, upto)

    async def _apply(self, applier: Applier, conn: Conn, events: list[Event]) -> ApplyResult:
        """The page, in a span when tracing: child of its first event's trace context,
        linked to the other events' traces."""
        if not events:
            return await applier.apply(conn, events)
        name = applier.projection.name
        with telemetry.span(
            f"intent.project {name}",
            {"intent.projection": name, "intent.projection.mode": "async",
             "intent.events": len(events)},
            over=(e.metadata.traceparent for e in events),
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
            from pump.observability.gauges import every, sample_lag

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
