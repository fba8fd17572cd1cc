"""Process one claimed batch in one transaction: the body of the worker's activity (and of
the pump's direct mode).

Lock every aggregate of the batch (advisory, transaction-scoped, in one global order so two
batches can never deadlock), load them all in two queries (snapshots, then the events after
them), decide each aggregate's commands in submission order with the pure domain, append
what every aggregate decided in one statement, save the snapshots that are due in one more.
Then record every command's outcome and mark the batch done, all in the same transaction:
either the whole batch's effects are committed, or none are and a retry starts over. A retry
after a crash finds the already-committed commands done and skips them.

A batch that fails for anything but the infrastructure is run again at once in isolation
(pump.batches.isolation), so that one command at fault never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from domain.aggregate import Aggregate
from domain.contracts import Event, StreamId
from domain.decider import Loaded, decide, evolve_all
from domain.errors import BadInput, DomainRejection
from domain.registry import Registry
from pump.batches.isolation import Part, Poisoned, is_transient, isolate
from pump.batches.reporting import (
    BatchResult,
    Spans,
    command_span,
    end_spans,
    report,
    timed_append,
)
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.projections.inline import InlineProjections
from pump.store.aggregates import AggregateRepository, StateCache
from pump.store.commands import CommandOutcome, Outcomes, PostgresCommandStore, StoredCommand
from pump.store.connections import Conn
from pump.store.events import AppendResult

log = logging.getLogger(__name__)

# Aggregates decided between two turns of the event loop.
YIELD_EVERY = 16



class PoisonedBatchError(Exception):
    """Isolation committed every command it could; these are left open behind a command
    at fault. Raised after the commit, so that the batch is retried (and on its last
    attempt the command at fault is recorded failed)."""

    def __init__(self, batch_id: UUID, held: int, first: BaseException):
        super().__init__(
            f"batch {batch_id}: {held} command(s) held behind a command that failed alone:"
            f" {type(first).__name__}: {first}"
        )
        self.batch_id = batch_id
        self.held = held


class BatchProcessor:
    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        registry: Registry,
        *,
        bulk: bool = True,
        cache_size: int = 10_000,
        inline: InlineProjections | None = None,
    ):
        """`bulk=False` loads and appends one aggregate at a time (the behaviour before bulk
        loading; kept for the benchmark's paired before/after). The processor keeps the
        states of the last `cache_size` aggregates it committed (0: none), so that the next
        batch on one of them reads only the events after that state (bulk mode only).
        `inline` projections are applied to the appended events in the batch's
        transaction."""
        self._pool = pool
        self._bulk = bulk
        self._registry = registry
        self._repo = AggregateRepository(pool, registry)
        self._cache = StateCache(cache_size) if bulk and cache_size > 0 else None
        self._inline = inline
        self.commands = PostgresCommandStore(pool)

    async def process(
        self,
        batch_id: UUID,
        *,
        before_commit: Callable[[], Any] | None = None,
        attempt: int = 1,
        last_attempt: bool = False,
    ) -> BatchResult:
        """`before_commit` is called inside the transaction, after all the work: tests use
        it to crash a worker at the worst moment. `attempt` and `last_attempt` say where the
        caller's retries stand: on the last one, a command that fails alone is recorded
        failed instead of being held for another attempt."""
        started = time.perf_counter()
        spans: Spans | None = telemetry.span_group()
        try:
            result, commands, outcomes = await self._process(batch_id, before_commit, spans)
        except Exception as exc:
            if spans:
                end_spans(spans, error=exc)
            if is_transient(exc):
                raise
            log_event(log, "batch.isolating",
                      f"batch {batch_id} failed as a whole; isolating the command at fault",
                      level=logging.WARNING, batch_id=str(batch_id), attempt=attempt,
                      error=f"{type(exc).__name__}: {exc}")
            result, commands, outcomes = await self._process(
                batch_id, before_commit, None, isolation=(attempt, last_attempt)
            )
        except BaseException as exc:
            if spans:
                end_spans(spans, error=exc)
            raise
        else:
            if spans is not None:
                end_spans(spans, outcomes=outcomes)
        report(result, commands, outcomes, started)
        if result.fault is not None:
            raise PoisonedBatchError(batch_id, result.held, result.fault)
        return result

    async def _process(
        self,
        batch_id: UUID,
        before_commit: Callable[[], Any] | None,
        spans: Spans | None,
        *,
        isolation: tuple[int, bool] | None = None,
    ) -> tuple[BatchResult, list[StoredCommand], Outcomes]:
        """One transaction over the batch's open commands; with `isolation` (attempt, last
        attempt), part by part in savepoints (traced as the batch only: a command may be
        decided more than once on the way)."""
        poisoned: Poisoned[StoredCommand] | None = None
        async with self._pool.connection() as conn, conn.transaction():
            open_commands = await self.commands.open_commands(batch_id, conn)
            if not open_commands:
                await self.commands.finish(batch_id, conn)
                return BatchResult(batch_id, 0, 0, skipped=True, events=0), [], Outcomes()
            by_stream: dict[StreamId, list[StoredCommand]] = defaultdict(list)
            for stored in open_commands:
                by_stream[stored.stream].append(stored)
            await _lock_streams(conn, list(by_stream))
            outcomes = Outcomes()
            states: list[Loaded[Any]] = []
            if isolation is not None:
                events, poisoned = await self._isolate(
                    conn, by_stream, outcomes, states, *isolation
                )
            elif self._bulk:
                events = await self._decide_all(conn, by_stream, outcomes, states, spans)
            else:
                events = 0
                for stream, commands in by_stream.items():
                    events += await self._decide_stream(conn, stream, commands, outcomes, spans)
            await self.commands.record(outcomes.items, conn)
            if poisoned is not None and poisoned.held:
                _, first = poisoned.found[0]
                await self.commands.note_error(batch_id, _failure(first, isolation), conn=conn)
            else:
                await self.commands.finish(batch_id, conn)
            if before_commit is not None:
                before_commit()
        if self._cache is not None:  # committed: these states are now the streams' own
            self._cache.put_committed(states)
        held = poisoned.held if poisoned is not None else []
        result = BatchResult(
            batch_id,
            processed=outcomes.count("processed"),
            rejected=outcomes.count("rejected"),
            skipped=False,
            events=events,
            failed=outcomes.count("failed"),
            held=len(held),
            fault=poisoned.found[0][1] if poisoned is not None and held else None,
        )
        return result, open_commands, outcomes

    async def _isolate(
        self,
        conn: Conn,
        by_stream: dict[StreamId, list[StoredCommand]],
        outcomes: Outcomes,
        states: list[Loaded[Any]],
        attempt: int,
        last_attempt: bool,
    ) -> tuple[int, Poisoned[StoredCommand]]:
        """Every part that can be processed, each in a savepoint; what succeeded joins
        `outcomes` and `states`. Returns the events appended and what was at fault."""
        events = 0

        async def run(part: Part[StreamId, StoredCommand]) -> None:
            nonlocal events
            mine, after = Outcomes(), list[Loaded[Any]]()
            async with conn.transaction():  # a savepoint: a failure undoes this part only
                appended = await self._decide_all(
                    conn, {stream: list(commands) for stream, commands in part},
                    mine, after, None,
                )
            events += appended
            outcomes.items.extend(mine.items)
            states.extend(after)

        def failed(stored: StoredCommand, exc: BaseException) -> None:
            outcomes.add(CommandOutcome(command_id=stored.command.command_id,
                                        status="failed", error=_failure(exc, (attempt, True))))

        poisoned = await isolate(list(by_stream.items()), run,
                                 last_attempt=last_attempt, on_failed=failed)
        for stored, exc in poisoned.found:
            log_event(log, "command.poison",
                      f"command {stored.command.command_id} fails on its own:"
                      f" {type(exc).__name__}: {exc}",
                      level=logging.ERROR if last_attempt else logging.WARNING,
                      tenant=str(stored.stream.tenant_id),
                      command_id=str(stored.command.command_id),
                      command_type=stored.command.command_type,
                      attempt=attempt, final=last_attempt)
        return events, poisoned

    async def _decide_all(
        self,
        conn: Conn,
        by_stream: dict[StreamId, list[StoredCommand]],
        outcomes: Outcomes,
        states: list[Loaded[Any]],
        spans: Spans | None,
    ) -> int:
        """Decide every stream's commands; `states` receives each stream's state after."""
        targets: list[tuple[type[Aggregate[Any]], StreamId]] = []
        for stream, commands in by_stream.items():
            try:
                targets.append((self._registry.aggregate_type(stream.aggregate_type), stream))
            except BadInput as exc:
                for stored in commands:
                    outcomes.add(_rejected(stored, exc.code, exc.message))
        loaded = await self._repo.load_many(targets, conn=conn, cache=self._cache)
        changes = []
        for index, (aggregate, stream) in enumerate(targets, 1):
            if index % YIELD_EVERY == 0:
                # Deciding is CPU only: let the event loop serve other batches (a light
                # lane's lone command, a saga) between aggregates instead of after all.
                await asyncio.sleep(0)
            before = loaded[stream]
            after, decided = self._decide(aggregate, before, by_stream[stream], outcomes, spans)
            states.append(after)
            if decided:
                changes.append((aggregate, before, after, decided))
        if changes:
            append_started = time.perf_counter()
            appended = await self._repo.record_many(changes, conn=conn)
            timed_append(append_started)
            await self._project(
                conn, [(decided, result) for (_, _, _, decided), result
                       in zip(changes, appended, strict=True)]
            )
        return sum(len(decided) for _, _, _, decided in changes)

    async def _project(
        self, conn: Conn, appended: Sequence[tuple[Sequence[Event], AppendResult]]
    ) -> None:
        """Run the inline projections on what was just appended, as stored (with feed
        positions), in this transaction."""
        if self._inline is None:
            return
        stored = [
            event.model_copy(
                update={"position": position, "transaction_id": result.transaction_id}
            )
            for events, result in appended
            for event, position in zip(events, result.positions, strict=True)
            if self._inline.reads(event.event_type)
        ]
        if stored:
            await self._inline.apply(conn, stored)

    async def _decide_stream(
        self,
        conn: Conn,
        stream: StreamId,
        commands: Sequence[StoredCommand],
        outcomes: Outcomes,
        spans: Spans | None,
    ) -> int:
        try:
            aggregate = self._registry.aggregate_type(stream.aggregate_type)
        except BadInput as exc:
            for stored in commands:
                outcomes.add(_rejected(stored, exc.code, exc.message))
            return 0
        before = await self._repo.load(aggregate, stream, conn=conn)
        state, decided = self._decide(aggregate, before, commands, outcomes, spans)
        if decided:
            append_started = time.perf_counter()
            result = await self._repo.record(aggregate, before, state, decided, conn=conn)
            timed_append(append_started)
            await self._project(conn, [(decided, result)])
        return len(decided)

    def _decide(
        self,
        aggregate: type[Aggregate[Any]],
        before: Loaded[Any],
        commands: Sequence[StoredCommand],
        outcomes: Outcomes,
        spans: Spans | None,
    ) -> tuple[Loaded[Any], list[Event]]:
        """Decide one aggregate's commands in order; rejections are recorded and skipped.
        With tracing on, each command gets a span (child of the trace context it was
        submitted with, ended when the batch commits) and its events carry that span's
        context as their traceparent."""
        state = before
        decided: list[Event] = []
        for stored in commands:
            command = stored.command
            traceparent = command_span(spans, stored) if spans is not None else None
            try:
                parsed = self._registry.parse_command(command)
                self._registry.check_role(command.command_type, command.metadata.role)
                new = decide(self._registry, parsed, state, traceparent=traceparent)
                state = evolve_all(self._registry, aggregate, state, new)
            except DomainRejection as exc:
                outcomes.add(_rejected(stored, exc.code, exc.reason, exc.details))
                continue
            except BadInput as exc:  # also Forbidden: the command itself is at fault
                outcomes.add(_rejected(stored, exc.code, exc.message, exc.details))
                continue
            decided.extend(new)
            outcomes.add(
                CommandOutcome(
                    command_id=command.command_id,
                    status="processed",
                    result={
                        "events": [str(e.event_id) for e in new],
                        "event_types": [e.event_type for e in new],
                        "version": state.version,
                    },
                )
            )
        return state, decided


def _failure(exc: BaseException, isolation: tuple[int, bool] | None) -> dict[str, Any]:
    """A command's (or batch's) error as recorded: the shape `fail` records too."""
    attempt = isolation[0] if isolation is not None else None
    return {"attempt": attempt, "type": type(exc).__name__, "message": str(exc),
            "isolated": True}


def _rejected(
    stored: StoredCommand, code: str, reason: str, details: dict[str, Any] | None = None
) -> CommandOutcome:
    return CommandOutcome(
        command_id=stored.command.command_id,
        status="rejected",
        error={"code": code, "reason": reason, "details": details or {}},
    )


def stream_lock_key(stream: StreamId) -> int:
    """A stable signed 64-bit advisory-lock key for an aggregate's stream."""
    name = f"{stream.tenant_id}/{stream.aggregate_type}/{stream.aggregate_id}".encode()
    return int.from_bytes(blake2b(name, digest_size=8).digest(), "big", signed=True)


async def _lock_streams(conn: Conn, streams: list[StreamId]) -> None:
    """Per-aggregate locks in one round trip, in one global order (ascending key), so that
    two transactions locking overlapping aggregates can never deadlock. The keys are sorted
    here and `unnest` yields them in array order."""
    keys = sorted({stream_lock_key(s) for s in streams})
    await conn.execute("select pg_advisory_xact_lock(k) from unnest(%s::bigint[]) as k", (keys,))
