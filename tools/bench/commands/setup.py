"""What `intent bench commands` runs on, all in the benchmark's own process: the callers'
and the pipeline's pools, Temporal's dev server with a worker per Temporal side, the client
processes of the throughput load, a LISTEN on the pumps' channel, and one side's pump at a
time, with tracing on for the traced side only."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

from pump.batches.processor import BatchProcessor
from pump.batches.pump import DirectDispatcher, Dispatcher, Pump, PumpSettings
from pump.store.connections import open_pool
from tools.bench.broadcast import broadcast_as_shipped
from tools.bench.callers import wake_on_notify
from tools.bench.commands.plan import Plan, Side
from tools.bench.pipeline import app_processor, dev_server


class CommandSetup:
    """Enter `running()` once for the run; then `pump(side)` for each measurement."""

    def __init__(self, url: str, plan: Plan, sides: Sequence[Side], clients: int = 1):
        self.url = url
        self.plan = plan
        self.sides = list(sides)
        self.clients = clients  # client processes of the throughput load (0: none)
        self.executor: ProcessPoolExecutor | None = None
        self.batch_done = asyncio.Event()  # set on every batch commit's NOTIFY
        self.spans_recorded = 0
        self._processors: dict[str, BatchProcessor] = {}
        self._queues: dict[str, str] = {}
        self._temporal_clients: dict[str, Any] = {}
        self._span_provider: Any = None  # an SDK TracerProvider when a side traces
        self._span_exporter: Any = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.submit_pool = await open_pool(
            self.url, min_size=self.plan.submitters, max_size=self.plan.submitters + 2,
            name="bench-submit",
        )
        self.pipeline_pool = await open_pool(self.url, min_size=4, max_size=12, name="bench-pump")
        try:
            async with (
                broadcast_as_shipped(self.url, self.pipeline_pool),
                dev_server() as env,
                self._workers(env.client),
                self._client_processes(),
            ):
                yield
        finally:
            if self._span_provider is not None:
                self._span_provider.shutdown()
            await self.pipeline_pool.close()
            await self.submit_pool.close()

    @asynccontextmanager
    async def _workers(self, client: Any) -> AsyncIterator[None]:
        """A worker per Temporal side, each on a task queue of its own, and the LISTEN."""
        from pump.batches.temporal import build_worker

        workers = []
        for side in self.sides:
            if side.temporal:
                queue = f"bench-{uuid4().hex[:8]}"
                self._queues[side.name] = queue
                side_client = self._traced_client(client) if side.tracing else client
                self._temporal_clients[side.name] = side_client
                workers.append(
                    build_worker(side_client, self.processor(side), queue, eager=side.eager)
                )
        tasks = [asyncio.create_task(w.run()) for w in workers]
        listener = asyncio.create_task(wake_on_notify(self.url, self.batch_done))
        try:
            yield
        finally:
            listener.cancel()
            for worker in workers:
                await worker.shutdown()
            await asyncio.gather(listener, *tasks, return_exceptions=True)

    @asynccontextmanager
    async def _client_processes(self) -> AsyncIterator[None]:
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

    def _traced_client(self, client: Any) -> Any:
        """The client (and so its worker) with Temporal's TracingInterceptor on the
        benchmark's tracer provider: spans batched to an in-memory exporter, as a process
        with OTEL_TRACES_EXPORTER set would batch them to its exporter."""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        from pump.observability import telemetry
        from pump.temporal.client import traced

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

    def processor(self, side: Side) -> BatchProcessor:
        """One per side for the whole run, as a worker process keeps its own (and with it
        the states it committed)."""
        if side.name not in self._processors:
            self._processors[side.name] = app_processor(
                self.pipeline_pool, bulk=not side.per_stream
            )
        return self._processors[side.name]

    def _dispatcher(self, side: Side) -> Dispatcher:
        if side.temporal:
            from pump.batches.temporal import TemporalDispatcher

            return TemporalDispatcher(
                self._temporal_clients[side.name], self._queues[side.name], eager=side.eager
            )
        return DirectDispatcher(self.processor(side))

    @asynccontextmanager
    async def pump(self, side: Side) -> AsyncIterator[Pump]:
        """The side's pump, with tracing switched on for the traced side only (one pump
        runs at a time)."""
        from pump.observability import telemetry

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
