"""Running the pump and the worker as processes: pools, Temporal client, signals, clean stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack

from domain.app import registry
from pump.batch_processor import BatchProcessor
from pump.database import open_pool
from pump.pump import DirectDispatcher, Dispatcher, Pump, PumpSettings
from pump.temporal import TemporalDispatcher, TemporalSettings, build_worker, connect

Log = Callable[[str], None]


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_pump(
    url: str, settings: PumpSettings, *, direct: bool, attempt_timeout: float, log: Log
) -> None:
    asyncio.run(_pump(url, settings, direct, attempt_timeout, log))


async def _pump(
    url: str, settings: PumpSettings, direct: bool, attempt_timeout: float, log: Log
) -> None:
    stop = _stop_on_signals()
    async with AsyncExitStack() as stack:
        pool = await open_pool(url, min_size=2, max_size=settings.concurrency + 4, name="pump")
        stack.push_async_callback(pool.close)
        dispatcher: Dispatcher
        if direct:
            dispatcher = DirectDispatcher(BatchProcessor(pool, registry))
            mode = "direct mode, no Temporal"
        else:
            temporal = TemporalSettings.from_env()
            dispatcher = TemporalDispatcher(
                await connect(temporal), temporal.task_queue,
                attempt_timeout_seconds=attempt_timeout,
            )
            mode = f"Temporal {temporal.address}, task queue {temporal.task_queue}"
        pump = Pump(pool, url, dispatcher, settings)
        log(f"pump {settings.name} running ({mode}; batches of up to {settings.batch_limit}, "
            f"{settings.concurrency} in flight)")
        await pump.run(stop)
        log(f"pump stopped after dispatching {pump.batches_dispatched} batch(es)")


def run_worker(url: str, *, max_activities: int, log: Log) -> None:
    asyncio.run(_worker(url, max_activities, log))


async def _worker(url: str, max_activities: int, log: Log) -> None:
    stop = _stop_on_signals()
    temporal = TemporalSettings.from_env()
    async with AsyncExitStack() as stack:
        pool = await open_pool(url, min_size=2, max_size=max_activities + 2, name="worker")
        stack.push_async_callback(pool.close)
        client = await connect(temporal)
        worker = build_worker(
            client, BatchProcessor(pool, registry), temporal.task_queue,
            max_activities=max_activities,
        )
        async with worker:
            log(f"worker running (Temporal {temporal.address}, task queue "
                f"{temporal.task_queue}, {max_activities} batches at once)")
            await stop.wait()
        log("worker stopped")
