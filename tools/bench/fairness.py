"""`intent bench fairness`: one tenant's flood beside another tenant's lone commands.

Per round, three phases on one pipeline (pump and Temporal worker in this process, the
app's inline projections on), every command submitted through `public.submit_command` as
an authenticated user:

- A alone: tenant A submits the flood (N `receive_stock` commands over many items, from a
  client process of its own with concurrent callers) as fast as it can; A's throughput is
  N over the time from its first submit to its last command processed;
- B alone: tenant B submits one command every `interval` seconds; B's latency is submit
  to processed (woken by the batch's NOTIFY, then read back);
- A and B: both at once; B's latency while A floods, and A's throughput beside it.

Targets: B's p99 under the flood <= 2 x its p99 alone and <= 300 ms; A's throughput with
B >= 0.9 of A alone. Figures are per round; the verdict takes the medians.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress
from rich.table import Table

from pump.batches.pump import Pump, PumpSettings
from pump.store.connections import Conn, open_pool
from tools.bench.callers import (
    TERMINAL,
    Caller,
    submit,
    submit_in_process,
    submit_on,
    wait_terminal,
    wake_on_notify,
)
from tools.bench.database import server_facts
from tools.bench.pipeline import app_processor, dev_server
from tools.bench.progress import add_task, advance
from tools.bench.stats import json_name, median, outcome_line, percentile, report_header, verdict


@dataclass(frozen=True)
class Plan:
    flood: int = 10_000
    items: int = 500  # A's items the flood spreads over
    submitters: int = 8  # A's concurrent callers
    interval: float = 0.1  # between B's commands
    lone_alone: int = 30  # B's commands in the B-alone phase
    rounds: int = 3

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


FULL = Plan()
QUICK = Plan(flood=600, items=60, lone_alone=8, rounds=1)

MAX_P99_RATIO = 2.0
MAX_P99_MS = 300.0
MIN_THROUGHPUT_RATIO = 0.9


@dataclass
class Round:
    a_alone: float  # commands/s
    a_with_b: float
    b_alone_ms: list[float]
    b_flooded_ms: list[float]
    # The submit_command call's own part of each flooded latency (the rest is the pipeline).
    b_flooded_submit_ms: list[float]

    def as_json(self) -> dict[str, Any]:
        return {
            "a_alone_per_s": round(self.a_alone, 1),
            "a_with_b_per_s": round(self.a_with_b, 1),
            "b_alone": _latencies(self.b_alone_ms),
            "b_flooded": _latencies(self.b_flooded_ms),
            "b_flooded_submit": _latencies(self.b_flooded_submit_ms),
        }


def _latencies(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "p50_ms": round(percentile(values, 50), 2),
            "p99_ms": round(percentile(values, 99), 2), "max_ms": round(max(values), 2)}


@dataclass
class Results:
    plan: Plan
    server: dict[str, Any]
    rounds: list[Round] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def median_of(self, pick: str) -> float:
        figures: dict[str, Callable[[Round], float]] = {
            "b_alone_p50": lambda r: percentile(r.b_alone_ms, 50),
            "b_alone_p99": lambda r: percentile(r.b_alone_ms, 99),
            "b_flooded_p50": lambda r: percentile(r.b_flooded_ms, 50),
            "b_flooded_p99": lambda r: percentile(r.b_flooded_ms, 99),
            "a_alone": lambda r: r.a_alone,
            "a_with_b": lambda r: r.a_with_b,
        }
        return median([figures[pick](r) for r in self.rounds])

    def p99_ratios(self) -> list[float]:
        return [percentile(r.b_flooded_ms, 99) / percentile(r.b_alone_ms, 99)
                for r in self.rounds]

    def throughput_ratios(self) -> list[float]:
        return [r.a_with_b / r.a_alone for r in self.rounds]

    def targets(self) -> list[tuple[str, str, str, bool]]:
        p99, ratio = self.median_of("b_flooded_p99"), median(self.p99_ratios())
        throughput = median(self.throughput_ratios())
        return [
            ("B's p99 under A's flood", f"{p99:.1f} ms", f"<= {MAX_P99_MS:.0f} ms",
             p99 <= MAX_P99_MS),
            ("... over B's p99 alone", f"{ratio:.2f}x", f"<= {MAX_P99_RATIO:.1f}x",
             ratio <= MAX_P99_RATIO),
            ("A's throughput with B / alone", f"{throughput:.2f}",
             f">= {MIN_THROUGHPUT_RATIO:.2f}", throughput >= MIN_THROUGHPUT_RATIO),
        ]

    @property
    def all_met(self) -> bool:
        return all(met for *_, met in self.targets())

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            **report_header("fairness", self.started, datetime.now(UTC), self.plan.as_json(),
                            database, __doc__),
            "server": self.server,
            "rounds": [r.as_json() for r in self.rounds],
            "p99_ratio_per_round": [round(v, 3) for v in self.p99_ratios()],
            "throughput_ratio_per_round": [round(v, 3) for v in self.throughput_ratios()],
            "targets": [{"what": w, "value": v, "target": t, "met": m}
                        for w, v, t, m in self.targets()],
            "all_met": self.all_met,
        }


class FairnessBench:
    def __init__(self, url: str, plan: Plan, progress: Progress | None):
        self.url, self.plan, self.progress = url, plan, progress
        self.a = Caller(uuid4(), uuid4())
        self.b = Caller(uuid4(), uuid4())
        self.a_items: list[UUID] = []
        self.b_item = uuid4()
        self._batch_done = asyncio.Event()
        self._rng = random.Random(20261204)

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        """The Temporal dev server, a worker and a pump with default settings."""
        from pump.batches.temporal import TemporalDispatcher, build_worker

        self.pool: AsyncConnectionPool[Conn] = await open_pool(
            self.url, min_size=4, max_size=16, name="bench-fairness")
        try:
            async with dev_server() as env:
                queue = f"bench-fairness-{uuid4().hex[:8]}"
                worker = build_worker(env.client, app_processor(self.pool), queue)
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(worker.run()),
                    asyncio.create_task(wake_on_notify(self.url, self._batch_done)),
                    asyncio.create_task(Pump(
                        self.pool, self.url, TemporalDispatcher(env.client, queue),
                        PumpSettings(name="bench:fairness")).run(stop)),
                ]
                try:
                    yield
                finally:
                    stop.set()
                    await asyncio.wait_for(tasks[2], timeout=60)
                    tasks[1].cancel()
                    await worker.shutdown()
                    await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self.pool.close()

    async def register(self) -> None:
        """A's items and B's item, registered through the pipeline (untimed)."""
        self.a_items = [uuid4() for _ in range(self.plan.items)]
        ids = [await submit(self.pool, self.b, "inventory.register_item",
                            {"item_id": str(self.b_item), "sku": "B", "name": "lone"})]
        for item in self.a_items:
            ids.append(await submit(self.pool, self.a, "inventory.register_item",
                                    {"item_id": str(item), "sku": "A", "name": "flood"}))
        await wait_terminal(self.pool, ids, seconds=300)

    async def flood(self, executor: ProcessPoolExecutor) -> float:
        """A's flood from its client process; commands/s from first submit to last done."""
        work = [(self.a.tenant_id, self.a.user_id, self._rng.choice(self.a_items),
                 self._rng.randint(1, 9)) for _ in range(self.plan.flood)]
        loop = asyncio.get_running_loop()
        ids, started, _ = await loop.run_in_executor(
            executor, submit_in_process, self.url, work, self.plan.submitters)
        await wait_terminal(self.pool, ids, seconds=600)
        done = perf_counter()  # when every command was seen terminal
        return len(ids) / (done - started)

    async def lone(
        self, until: asyncio.Event | None, count: int
    ) -> tuple[list[float], list[float]]:
        """B's commands, one every interval (`count` of them, or until `until` is set);
        each one's submit-to-processed latency in ms, and the submit's own part."""
        latencies: list[float] = []
        submits: list[float] = []
        async with self.pool.connection() as conn:
            sent = 0
            while (until is None and sent < count) or (until is not None and not until.is_set()):
                tick = perf_counter()
                started = perf_counter()
                command_id = await submit_on(conn, self.b, "inventory.receive_stock",
                                             {"item_id": str(self.b_item), "quantity": 1})
                submits.append((perf_counter() - started) * 1000)
                await self._processed(command_id)
                latencies.append((perf_counter() - started) * 1000)
                sent += 1
                await asyncio.sleep(max(0.0, self.plan.interval - (perf_counter() - tick)))
        return latencies, submits

    async def _processed(self, command_id: UUID) -> None:
        """Woken by each batch's NOTIFY; a short poll as well, in case one is missed."""
        async with self.pool.connection() as conn:
            while True:
                self._batch_done.clear()
                row = await (await conn.execute(
                    "select status from intent.commands where command_id = %s", (command_id,)
                )).fetchone()
                if row is not None and row[0] in TERMINAL:
                    return
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._batch_done.wait(), timeout=0.02)

    async def round(self, executor: ProcessPoolExecutor) -> Round:
        a_alone = await self.flood(executor)
        b_alone, _ = await self.lone(None, self.plan.lone_alone)
        flooding = asyncio.Event()

        async def flood_then_stop() -> float:
            try:
                return await self.flood(executor)
            finally:
                flooding.set()

        a_with_b, (b_flooded, submits) = await asyncio.gather(
            flood_then_stop(), self.lone(flooding, 0))
        return Round(a_alone, a_with_b, b_alone, b_flooded, submits)


async def run_fairness(url: str, plan: Plan, progress: Progress | None) -> Results:
    results = Results(plan, await server_facts(url))
    bench = FairnessBench(url, plan, progress)
    executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    task = add_task(progress, "fairness", plan.rounds + 1)
    try:
        async with bench.pipeline():
            await bench.register()
            advance(progress, task)
            for _ in range(plan.rounds):
                results.rounds.append(await bench.round(executor))
                advance(progress, task)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    return results


def fairness_table(results: Results) -> Table:
    table = Table(title="Tenant fairness: B's lone commands beside A's flood")
    for column in ("round", "A alone /s", "A with B /s", "B alone p50/p99 ms",
                   "B flooded p50/p99 ms", "of which submit p50/p99", "B flooded n"):
        table.add_column(column, justify="right")
    for number, r in enumerate(results.rounds, 1):
        table.add_row(
            str(number), f"{r.a_alone:,.0f}", f"{r.a_with_b:,.0f}",
            f"{percentile(r.b_alone_ms, 50):.1f} / {percentile(r.b_alone_ms, 99):.1f}",
            f"{percentile(r.b_flooded_ms, 50):.1f} / {percentile(r.b_flooded_ms, 99):.1f}",
            f"{percentile(r.b_flooded_submit_ms, 50):.1f} / "
            f"{percentile(r.b_flooded_submit_ms, 99):.1f}",
            str(len(r.b_flooded_ms)),
        )
    return table


def targets_table(results: Results) -> Table:
    table = Table(title="Targets (medians of the rounds)")
    for column in ("what", "value", "target", ""):
        table.add_column(column)
    for what, value, target, met in results.targets():
        table.add_row(what, value, target, verdict(met))
    return table


def summary_lines(results: Results) -> list[str]:
    return [
        f"B alone: p50 {results.median_of('b_alone_p50'):.1f} ms, "
        f"p99 {results.median_of('b_alone_p99'):.1f} ms; under A's flood: p50 "
        f"{results.median_of('b_flooded_p50'):.1f} ms, p99 "
        f"{results.median_of('b_flooded_p99'):.1f} ms (per-round p99 ratios "
        f"{', '.join(f'{v:.2f}' for v in results.p99_ratios())})",
        f"A: {results.median_of('a_alone'):,.0f} commands/s alone, "
        f"{results.median_of('a_with_b'):,.0f} with B (per-round ratios "
        f"{', '.join(f'{v:.2f}' for v in results.throughput_ratios())})",
        outcome_line(results.all_met),
    ]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("fairness", now)

