"""Running the long-running processes (pump, worker, saga router, broadcast relay): pools,
Temporal client, signals, clean stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from psycopg_pool import AsyncConnectionPool

from projections.application import Application
from pump.batches.processor import BatchProcessor
from pump.batches.pump import DirectDispatcher, Dispatcher, Pump, PumpSettings
from pump.batches.temporal import TemporalDispatcher, build_worker
from pump.broadcast.relay import BroadcastRelay, relay_problem
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.projections.inline import InlineProjections
from pump.readiness import mark_ready
from pump.sagas.router import SagaRouter
from pump.sagas.worker import build_saga_worker, saga_task_queue, saga_timer_overrides
from pump.store.connections import Conn, open_pool
from pump.temporal.client import connect
from pump.temporal.settings import TemporalSettings

Log = Callable[[str], None]

log = logging.getLogger("intent.process")


def _announce(say: Log | None, event: str, text: str, **fields: Any) -> None:
    """A process start or stop: one structured line, and the caller's own sink if any; a
    start also tells a supervisor that the process is serving (pump.readiness)."""
    log_event(log, event, text, **fields)
    if say is not None:
        say(text)
    if event == "process.start":
        mark_ready()


def _telemetry(stack: AsyncExitStack, service: str) -> None:
    """Traces and metrics as the OTEL_* variables say; flushed on the way out."""
    stack.callback(telemetry.configure_from_env(service))


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_pump(
    app: Application, url: str, settings: PumpSettings, *, direct: bool,
    attempt_timeout: float, log: Log | None = None,
) -> None:
    asyncio.run(_pump(app, url, settings, direct, attempt_timeout, log))


async def _pump(
    app: Application, url: str, settings: PumpSettings, direct: bool, attempt_timeout: float,
    say: Log | None,
) -> None:
    stop = _stop_on_signals()
    async with AsyncExitStack() as stack:
        _telemetry(stack, "pump")
        pool = await open_pool(url, min_size=2, max_size=settings.concurrency + 4, name="pump")
        stack.push_async_callback(pool.close)
        dispatcher: Dispatcher
        if direct:
            dispatcher = DirectDispatcher(_processor(app, pool))
            mode = "direct mode, no Temporal"
        else:
            temporal = TemporalSettings.from_env()
            dispatcher = TemporalDispatcher(
                await connect(temporal), temporal.task_queue,
                attempt_timeout_seconds=attempt_timeout,
            )
            mode = f"Temporal {temporal.address}, task queue {temporal.task_queue}"
        pump = Pump(pool, url, dispatcher, settings)
        _announce(say, "process.start",
                  f"pump {settings.name} running ({mode}; batches of up to "
                  f"{settings.batch_limit}, {settings.concurrency} in flight)",
                  process="pump", name=settings.name, tracing=telemetry.tracing(),
                  metrics=telemetry.metering())
        await pump.run(stop)
        _announce(say, "process.stop",
                  f"pump stopped after dispatching {pump.batches_dispatched} batch(es)",
                  process="pump", batches=pump.batches_dispatched)


def _processor(app: Application, pool: AsyncConnectionPool[Conn]) -> BatchProcessor:
    """The batch code with the app's inline projections applied in its transaction."""
    inline = InlineProjections(app.catalog, registry=app.registry)
    return BatchProcessor(pool, app.registry, inline=inline)


def run_worker(
    app: Application, url: str, *, max_activities: int, log: Log | None = None
) -> None:
    asyncio.run(_worker(app, url, max_activities, log))


async def _worker(app: Application, url: str, max_activities: int, say: Log | None) -> None:
    stop = _stop_on_signals()
    temporal = TemporalSettings.from_env()
    saga_queue = saga_task_queue()
    async with AsyncExitStack() as stack:
        _telemetry(stack, "worker")
        pool = await open_pool(url, min_size=2, max_size=max_activities + 4, name="worker")
        stack.push_async_callback(pool.close)
        client = await connect(temporal)
        batches = build_worker(
            client, _processor(app, pool), temporal.task_queue,
            max_activities=max_activities,
        )
        saga_worker = build_saga_worker(client, pool, app, saga_queue)
        async with batches, saga_worker:
            _announce(say, "process.start",
                      f"worker running (Temporal {temporal.address}; batches on "
                      f"{temporal.task_queue}, {max_activities} at once; sagas on "
                      f"{saga_queue})",
                      process="worker", tracing=telemetry.tracing(),
                      metrics=telemetry.metering())
            await stop.wait()
        _announce(say, "process.stop", "worker stopped", process="worker")


def run_saga_router(app: Application, url: str, *, log: Log | None = None) -> None:
    asyncio.run(_saga_router(app, url, log))


async def _saga_router(app: Application, url: str, say: Log | None) -> None:
    stop = _stop_on_signals()
    temporal = TemporalSettings.from_env()
    timers = saga_timer_overrides()
    async with AsyncExitStack() as stack:
        _telemetry(stack, "sagas")
        pool = await open_pool(url, min_size=1, max_size=4, name="saga-router")
        stack.push_async_callback(pool.close)
        router = SagaRouter(
            pool, await connect(temporal), registry=app.registry, sagas=app.sagas,
            task_queue=saga_task_queue(), timer_seconds=timers,
        )
        names = ", ".join(s.name for s in app.sagas) or "none"
        _announce(say, "process.start",
                  f"saga router running (sagas: {names}; timer overrides: {timers or 'none'})",
                  process="sagas", tracing=telemetry.tracing(), metrics=telemetry.metering())
        await router.run(stop)
        _announce(say, "process.stop",
                  f"saga router stopped after {router.delivered} deliveries",
                  process="sagas", deliveries=router.delivered)


class RelayUnusableError(Exception):
    """The database cannot be relayed from (no relay function, or not allowed to run it)."""


def run_relay(url: str, *, page: int, idle_seconds: float, log: Log | None = None) -> None:
    asyncio.run(_relay(url, page, idle_seconds, log))


async def _relay(url: str, page: int, idle_seconds: float, say: Log | None) -> None:
    stop = _stop_on_signals()
    async with AsyncExitStack() as stack:
        _telemetry(stack, "relay")
        pool = await open_pool(url, min_size=1, max_size=2, name="relay")
        stack.push_async_callback(pool.close)
        problem = await relay_problem(pool)
        if problem is not None:
            raise RelayUnusableError(problem)
        relay = BroadcastRelay(pool, page=page, idle_seconds=idle_seconds)
        _announce(say, "process.start",
                  f"broadcast relay running (pages of up to {page} events; polls every "
                  f"{idle_seconds * 1000:g} ms when idle)",
                  process="relay", page=page, idle_seconds=idle_seconds,
                  tracing=telemetry.tracing(), metrics=telemetry.metering())
        await relay.run(stop)
        _announce(say, "process.stop",
                  f"broadcast relay stopped after relaying {relay.relayed} event(s)",
                  process="relay", events=relay.relayed)
