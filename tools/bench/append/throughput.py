"""Sections (a)-(c) of `intent bench append`: events/s of Intent's appends beside raw
INSERTs and COPYs of the same rows, in rounds of rotating order."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from time import perf_counter
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress

from domain.contracts import Event, StreamId
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from tools.bench.append.plan import TARGET_BATCH, TARGET_CONCURRENT, TARGET_SINGLE, Plan
from tools.bench.append.raw_table import COPY_RAW, INSERT_RAW, RAW_TABLE
from tools.bench.progress import add_task, advance
from tools.bench.stats import Comparison, Series
from tools.bench.workload import RawRow, item_events, new_stream, raw_rows

Timed = Callable[[], Awaitable[int]]  # the timed work; returns how many events it wrote
# A side of a section: its label, what it does, and what builds its timed work (untimed).
Side = tuple[str, str, Callable[[], Timed]]


async def _rate(work: Timed) -> float:
    """Events per second of one timed run."""
    gc.collect()
    start = perf_counter()
    events = await work()
    return events / (perf_counter() - start)


class Throughput:
    """The three sections against one pool, every stream under `tenant_id`.

    `store` is the store exactly as the write path uses it: `AggregateRepository.save` has
    validated every payload (by evolving it) before it appends, so its store does not
    validate again. A store given a registry would add that check to every append."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        store: PostgresEventStore,
        plan: Plan,
        tenant_id: UUID,
        progress: Progress | None = None,
    ):
        self.pool = pool
        self.store = store
        self.plan = plan
        self.tenant_id = tenant_id
        self.progress = progress

    # -- the sides: each builds its input untimed and returns the timed work --------------

    def _intent_writers(self, writers: int, events_each: int, batch: int = 1) -> Timed:
        work: list[tuple[StreamId, list[list[Event]]]] = []
        for _ in range(writers):
            stream = new_stream(self.tenant_id)
            events = item_events(stream, events_each)
            work.append((stream, [events[i : i + batch] for i in range(0, events_each, batch)]))
        store = self.store

        async def writer(stream: StreamId, chunks: list[list[Event]]) -> None:
            version = 0
            for chunk in chunks:
                await store.append(stream, version, chunk)
                version += len(chunk)

        async def run() -> int:
            if writers == 1:
                await writer(*work[0])
            else:
                await asyncio.gather(*(writer(s, c) for s, c in work))
            return writers * events_each

        return run

    def _rows(self, count: int, jsonb: bool) -> list[RawRow]:
        events = item_events(new_stream(self.tenant_id), count)
        return raw_rows(events, jsonb=jsonb)

    def _raw_inserts(self, writers: int, events_each: int, jsonb: bool) -> Timed:
        rows = [self._rows(events_each, jsonb) for _ in range(writers)]
        pool = self.pool

        async def writer(mine: list[RawRow]) -> None:
            for row in mine:
                async with pool.connection() as conn:
                    await conn.execute(INSERT_RAW, row)

        async def run() -> int:
            if writers == 1:
                await writer(rows[0])
            else:
                await asyncio.gather(*(writer(r) for r in rows))
            return writers * events_each

        return run

    def _raw_copies(self, batches: int, size: int, jsonb: bool) -> Timed:
        rows = self._rows(batches * size, jsonb)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        pool = self.pool

        async def run() -> int:
            for chunk in chunks:
                # One COPY statement in an autocommit connection: one transaction per batch.
                async with (
                    pool.connection() as conn,
                    conn.cursor() as cur,
                    cur.copy(COPY_RAW) as copy,
                ):
                    for row in chunk:
                        await copy.write_row(row)
            return len(rows)

        return run

    # -- rounds ---------------------------------------------------------------------------

    async def _rounds(self, title: str, sides: list[Callable[[], Timed]]) -> list[list[float]]:
        """Events/s of each side per round. Every round runs each side once, in an order
        rotated by one from the round before, after one untimed warm-up round."""
        rounds = self.plan.rounds
        task = add_task(self.progress, title, rounds + 1)
        for side in sides:  # warm-up: pool connections, prepared statements, caches
            await _rate(side())
        advance(self.progress, task)
        rates: list[list[float]] = [[] for _ in sides]
        order = list(range(len(sides)))
        for number in range(rounds):
            shift = number % len(order)
            for index in order[shift:] + order[:shift]:
                rates[index].append(await _rate(sides[index]()))
            advance(self.progress, task)
        return rates

    async def _compare(
        self, title: str, intent: Side, baselines: list[Side], min_ratio: float
    ) -> Comparison:
        sides = [intent, *baselines]
        rates = await self._rounds(title, [make for _, _, make in sides])
        series = [
            Series(label, description, "events/s", per_round)
            for (label, description, _), per_round in zip(sides, rates, strict=True)
        ]
        return Comparison(
            intent=series[0], baseline=series[1], min_ratio=min_ratio, also=series[2:]
        )

    # -- the sections ---------------------------------------------------------------------

    async def single_writer(self) -> Comparison:
        n = self.plan.single_events
        return await self._compare(
            "(a) 1 writer, 1 event/tx",
            (
                "PostgresEventStore.append",
                "PostgresEventStore.append(stream, v, [event]) as AggregateRepository.save "
                "calls it, of pre-built events validated by the domain before timing: "
                "versions 1..n of one fresh stream per round",
                lambda: self._intent_writers(1, n),
            ),
            [
                (
                    "INSERT, JSON pre-serialised",
                    f"single-row INSERT into {RAW_TABLE}, payload and metadata passed as JSON "
                    "text serialised before the timed loop; autocommit, one pooled connection "
                    "per statement",
                    lambda: self._raw_inserts(1, n, jsonb=False),
                ),
                (
                    "INSERT, psycopg Jsonb",
                    "the same INSERT with payload and metadata as Python dicts in psycopg's "
                    "Jsonb wrapper, serialised by the driver inside the timed loop",
                    lambda: self._raw_inserts(1, n, jsonb=True),
                ),
            ],
            TARGET_SINGLE,
        )

    async def concurrent_writers(self) -> Comparison:
        w, n = self.plan.writers, self.plan.concurrent_events
        return await self._compare(
            f"(b) {w} writers, 1 event/tx",
            (
                "PostgresEventStore.append",
                f"{w} asyncio tasks, each appending versions 1..n of its own fresh stream, "
                "one pre-built event per append",
                lambda: self._intent_writers(w, n),
            ),
            [
                (
                    "INSERT, JSON pre-serialised",
                    f"{w} asyncio tasks, each inserting its own rows into {RAW_TABLE}, one "
                    "row per statement, autocommit, JSON serialised before the timed loop",
                    lambda: self._raw_inserts(w, n, jsonb=False),
                ),
                (
                    "INSERT, psycopg Jsonb",
                    "the same with payload and metadata in psycopg's Jsonb wrapper, "
                    "serialised by the driver inside the timed loop",
                    lambda: self._raw_inserts(w, n, jsonb=True),
                ),
            ],
            TARGET_CONCURRENT,
        )

    async def batch_append(self) -> Comparison:
        b, size = self.plan.batches, self.plan.batch_size
        return await self._compare(
            f"(c) {size} events/tx",
            (
                f"PostgresEventStore.append x{size}",
                f"PostgresEventStore.append of {size} pre-built events at a time, successive "
                "versions of one fresh stream per round",
                lambda: self._intent_writers(1, b * size, batch=size),
            ),
            [
                (
                    f"COPY x{size}, JSON pre-serialised",
                    f"COPY {RAW_TABLE} FROM STDIN of {size} rows (psycopg cursor.copy, "
                    "write_row), one COPY statement per autocommit transaction, JSON "
                    "serialised before the timed loop",
                    lambda: self._raw_copies(b, size, jsonb=False),
                ),
                (
                    f"COPY x{size}, psycopg Jsonb",
                    "the same COPY with payload and metadata in psycopg's Jsonb wrapper, "
                    "serialised by the driver inside the timed loop",
                    lambda: self._raw_copies(b, size, jsonb=True),
                ),
            ],
            TARGET_BATCH,
        )
