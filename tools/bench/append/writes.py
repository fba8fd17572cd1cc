"""W1-W4 of `intent bench append`: appends through `AggregateRepository.save` beside
prepared INSERTs (one row each) and COPYs (W4) of the same facts into the RAW table.

Per round, each writer gets input made before either side is timed: the streams it writes
(a new one per append, or one it continues), their events decided from `Command` envelopes
with the state each starts from, and the same events as RAW rows. Timed: the writers, as
asyncio tasks, from the first statement to the last; each statement on its own as well."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress

from domain.contracts import Event
from domain.decider import Loaded
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from tools.bench.append.account import Account, AccountState, decided, new_account
from tools.bench.append.plan import WriteSpec
from tools.bench.append.raw import INSERT_RAW, RAW_TABLE, RawRow, copy_rows, raw_rows
from tools.bench.append.results import Drains, Latencies, Workload
from tools.bench.broadcast import Broadcast, Drained
from tools.bench.progress import add_task, advance
from tools.bench.stats import Series

# A stream as one writer appends to it: the state it starts from, then each append's events.
Run = tuple[Loaded[AccountState], list[list[Event]]]
# One writer's timed work: takes the list to put each statement's time (ms) in, returns the
# number of events it wrote.
Writer = Callable[[list[float]], Awaitable[int]]


@dataclass(frozen=True)
class WriterInput:
    """One writer's work for one round, for both sides: the same facts."""

    runs: list[Run]  # Intent: the streams, each continued from its start
    statements: list[list[RawRow]]  # RAW: the rows of each statement, in order


@dataclass(frozen=True)
class Timed:
    events: int
    seconds: float
    latencies: list[float]  # ms per statement

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def writer_input(spec: WriteSpec, tenant_id: UUID) -> WriterInput:
    """Decide (untimed) what one writer appends in a round."""
    runs: list[Run] = []
    if spec.one_stream:
        start = new_account(tenant_id)
        events, _ = decided(start, spec.appends * spec.batch)
        runs.append((start, [events[i : i + spec.batch] for i in range(0, len(events),
                                                                        spec.batch)]))
    else:
        for _ in range(spec.appends):
            start = new_account(tenant_id)
            events, _ = decided(start, spec.batch)
            runs.append((start, [events]))
    statements = [raw_rows(chunk) for _, appends in runs for chunk in appends]
    return WriterInput(runs, statements)


def intent_writer(repo: AggregateRepository, runs: list[Run]) -> Writer:
    async def write(latencies: list[float]) -> int:
        written = 0
        for start, appends in runs:
            loaded = start
            for events in appends:
                began = perf_counter()
                loaded, _ = await repo.save(Account, loaded, events)
                latencies.append((perf_counter() - began) * 1000)
                written += len(events)
        return written

    return write


def raw_writer(pool: AsyncConnectionPool[Conn], statements: list[list[RawRow]]) -> Writer:
    """One prepared autocommit INSERT per single-row statement, one COPY per batch."""

    async def write(latencies: list[float]) -> int:
        written = 0
        for rows in statements:
            began = perf_counter()
            async with pool.connection() as conn:
                if len(rows) == 1:
                    await conn.execute(INSERT_RAW, rows[0], prepare=True)
                else:
                    await copy_rows(conn, rows)
            latencies.append((perf_counter() - began) * 1000)
            written += len(rows)
        return written

    return write


async def timed(writers: list[Writer]) -> Timed:
    """The writers at once (asyncio tasks), from the first statement to the last."""
    gc.collect()
    latencies: list[float] = []
    start = perf_counter()
    counts = await asyncio.gather(*(write(latencies) for write in writers))
    return Timed(sum(counts), perf_counter() - start, latencies)


class Writes:
    """W1-W4 against one pool, every stream under `tenant_id`."""

    def __init__(
        self, pool: AsyncConnectionPool[Conn], repo: AggregateRepository,
        broadcast: Broadcast, rounds: int, tenant_id: UUID,
        progress: Progress | None = None,
    ):
        self.pool = pool
        self.repo = repo
        self.broadcast = broadcast
        self.rounds = rounds
        self.tenant_id = tenant_id
        self.progress = progress

    async def _round(
        self, spec: WriteSpec, intent_first: bool
    ) -> tuple[Timed, Timed, Drained | None]:
        inputs = [writer_input(spec, self.tenant_id) for _ in range(spec.writers)]
        intent_side = [intent_writer(self.repo, i.runs) for i in inputs]
        raw_side = [raw_writer(self.pool, i.statements) for i in inputs]
        # After the Intent side, untimed: how long the relay (if any) takes to catch up.
        if intent_first:
            intent = await timed(intent_side)
            drained = await self.broadcast.drain()
            raw = await timed(raw_side)
        else:
            raw = await timed(raw_side)
            intent = await timed(intent_side)
            drained = await self.broadcast.drain()
        return intent, raw, drained

    async def measure(self, spec: WriteSpec) -> Workload:
        task = add_task(self.progress, f"{spec.key} {spec.title}", self.rounds + 1)
        await self._round(spec, intent_first=True)  # warm-up: connections, plans, caches
        advance(self.progress, task)
        intent: list[float] = []
        raw: list[float] = []
        latency = {"intent": Latencies(), "raw": Latencies()}
        drains = Drains() if self.broadcast.mode == "relay" else None
        for number in range(self.rounds):
            i, r, drained = await self._round(spec, intent_first=number % 2 == 0)
            intent.append(i.rate)
            raw.append(r.rate)
            latency["intent"].samples += i.latencies
            latency["raw"].samples += r.latencies
            if drains is not None and drained is not None:
                drains.rounds.append(drained)
            advance(self.progress, task)
        return Workload(
            key=spec.key, title=spec.title, what=describe(spec), unit="events/s",
            intent=Series("Intent", "AggregateRepository.save", "events/s", intent),
            raw=Series("RAW", "INSERT" if spec.batch == 1 else "COPY", "events/s", raw),
            ratios=[a / b for a, b in zip(intent, raw, strict=True)],
            ratio_is="Intent events/s / RAW events/s, per round",
            target=spec.target, latency=latency, drains=drains,
            sizes={"writers": spec.writers, "appends_per_writer_per_round": spec.appends,
                   "events_per_append": spec.batch, "events_per_side_per_round": spec.events},
        )


def describe(spec: WriteSpec) -> str:
    """How a write workload's two sides are measured, for the JSON."""
    streams = (
        "each writer continues one new stream per round, every save with the Loaded the "
        "previous one returned (its expected version)" if spec.one_stream
        else "every append a new stream (expected version 0)"
    )
    writers = "1 writer" if spec.writers == 1 else (
        f"{spec.writers} writers (asyncio tasks sharing the pool of {spec.writers})"
    )
    intent = (
        f"Intent: {writers}, {spec.appends} AggregateRepository.save(Account, loaded, "
        f"events) each per round with {spec.batch} event(s) per save; {streams}; a save "
        "that crosses a multiple of 100 also writes a snapshot, in the same transaction."
    )
    if spec.batch == 1:
        raw = (
            f"RAW: the same {writers}, one prepared autocommit INSERT into {RAW_TABLE} per "
            "row (versions in the same order, the same stream ids as text)."
        )
    else:
        raw = (
            f"RAW: COPY {RAW_TABLE} FROM STDIN of the same {spec.batch} rows per statement "
            "(one autocommit transaction each), in the same order."
        )
    return f"{intent} {raw} JSON serialised before timing; rates are events/s."
