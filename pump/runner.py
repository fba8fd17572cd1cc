"""Running the pump as a process: pool, signals, clean stop."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import timedelta

from domain.app import registry
from pump.batch_processor import BatchProcessor
from pump.database import open_pool
from pump.pump import DirectDispatcher, Pump, PumpSettings


def run_pump(
    url: str,
    *,
    batch_limit: int,
    concurrency: int,
    poll_interval: float,
    sweep_after: timedelta,
    log: Callable[[str], None],
) -> None:
    asyncio.run(
        _run(url, PumpSettings(batch_limit, poll_interval, concurrency, sweep_after), log)
    )


async def _run(url: str, settings: PumpSettings, log: Callable[[str], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await open_pool(url, min_size=2, max_size=settings.concurrency + 4, name="pump")
    try:
        pump = Pump(pool, url, DirectDispatcher(BatchProcessor(pool, registry)), settings)
        log(f"pump {settings.name} running (direct mode, batches of up to "
            f"{settings.batch_limit}, {settings.concurrency} in flight)")
        await pump.run(stop)
        log(f"pump stopped after dispatching {pump.batches_dispatched} batch(es)")
    finally:
        await pool.close()
