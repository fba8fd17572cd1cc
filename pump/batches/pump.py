"""The command pump: wake on NOTIFY (or a poll), claim pending commands into batches, hand
each batch to a dispatcher, and sweep batches that were dispatched but never finished.

NOTIFY is only a wake-up: the pump always re-reads the table, so a lost notification costs
at most one poll interval and nothing else (and it works behind a transaction pooler).
Several pumps may run side by side: claims are serialised in the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID

import psycopg
from opentelemetry.trace import Span
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from pump.batches.isolation import is_unavailable
from pump.batches.processor import BatchProcessor, PoisonedBatchError
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.store.commands import Batch, PostgresCommandStore
from pump.store.connections import Conn

log = logging.getLogger(__name__)

CHANNEL = "intent_commands"


class Dispatcher(Protocol):
    async def dispatch(self, batch_id: UUID) -> None:
        """Get the batch processed. Must be safe to call again for the same batch."""


class DirectDispatcher:
    """Process the batch in this process, without Temporal. For the benchmark's comparison
    and for tests: the same batch code the worker runs, with a simple retry loop.

    An attempt lost because the database was unreachable does not count: the loop waits
    (backoff up to 5 s) for as long as `unavailable_seconds`, then leaves the batch to the
    sweep, so that acknowledged commands are not recorded failed for an outage."""

    def __init__(
        self,
        processor: BatchProcessor,
        *,
        max_attempts: int = 5,
        first_backoff: float = 0.1,
        unavailable_seconds: float = 600.0,
    ):
        self._processor = processor
        self._max_attempts = max_attempts
        self._first_backoff = first_backoff
        self._unavailable_seconds = unavailable_seconds

    async def dispatch(self, batch_id: UUID) -> None:
        delay, attempt = self._first_backoff, 1
        loop = asyncio.get_running_loop()
        unavailable_since: float | None = None
        while True:
            try:
                await self._processor.process(
                    batch_id, attempt=attempt, last_attempt=attempt >= self._max_attempts
                )
                return
            except Exception as exc:  # the processor isolates; what reaches here is retried
                if is_unavailable(exc):
                    unavailable_since = unavailable_since or loop.time()
                    if loop.time() - unavailable_since > self._unavailable_seconds:
                        raise
                    log.warning("batch %s: database unavailable (%s); waiting", batch_id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                unavailable_since = None
                error = {"attempt": attempt, "type": type(exc).__name__, "message": str(exc)}
                log.warning("batch %s attempt %d failed: %s", batch_id, attempt, exc)
                if attempt >= self._max_attempts:
                    await self._processor.commands.fail(batch_id, error)
                    return
                if not isinstance(exc, PoisonedBatchError):  # that one noted its own
                    await self._processor.commands.note_error(batch_id, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                attempt += 1


@dataclass(frozen=True)
class PumpSettings:
    batch_limit: int = 250
    poll_interval: float = 1.0
    # Batches dispatched and not yet finished, per pump: enough that a batch waiting on
    # Temporal (start, workflow task, result: ~100 ms each) never leaves the worker idle.
    concurrency: int = 6
    sweep_after: timedelta = timedelta(seconds=60)
    # A batch the sweep found unfinished this many times is given up on: its open commands
    # are recorded failed (`abandoned`). Poison isolation finishes every batch whose worker
    # runs, so this only ends batches nothing could process for about this many minutes.
    max_dispatches: int = 20
    # How long a stopping pump waits for its batches in flight before leaving them.
    stop_grace: float = 10.0
    # After a claim that did not fill a batch, with a batch still in flight, wait this long
    # after it before the next claim, so that under load batches fill up (a workflow costs
    # the Temporal server the same whatever its size). A lone command at low load, and a
    # backlog (the last claim was full), are claimed at once.
    linger: float = 0.2
    # Beside the main claims, one batch at a time is claimed for the tenants with nothing in
    # flight, so that a tenant's flood (which fills the slots and the batches) does not make
    # another tenant's lone command wait for a slot and then for a full batch.
    light_lane: bool = True
    name: str = f"{socket.gethostname()}:{os.getpid()}"


class Pump:
    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        listen_url: str,
        dispatcher: Dispatcher,
        settings: PumpSettings | None = None,
    ):
        self._pool = pool
        self._listen_url = listen_url
        self._dispatcher = dispatcher
        self.settings = settings or PumpSettings()
        self._store = PostgresCommandStore(pool)
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._light_slot = asyncio.Semaphore(1)
        self._light_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()  # set while no batch is in flight
        self._idle.set()
        self.batches_dispatched = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set; then finish what was dispatched and return."""
        listener = asyncio.create_task(self._listen(stop))
        background = [listener]
        if self.settings.light_lane:
            background.append(asyncio.create_task(self._light_lane(stop)))
        if telemetry.metering():
            from pump.observability.gauges import every, sample_held_back

            background.append(
                asyncio.create_task(every(stop, lambda: sample_held_back(self._pool)))
            )
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        last_claim, last_full = -1e9, False
        try:
            while not stop.is_set():
                if loop.time() >= next_sweep:
                    await self._sweep()
                    next_sweep = loop.time() + self.settings.sweep_after.total_seconds() / 2
                await self._slots.acquire()
                if self._tasks and not last_full:
                    linger = last_claim + self.settings.linger - loop.time()
                    if linger > 0:  # cut short when nothing is in flight any more
                        await _wait_any(self._idle, stop, linger)
                self._wake.clear()
                last_claim = loop.time()
                claim_started = time.time_ns()
                try:
                    batch = await self._store.claim(
                        self.settings.batch_limit, claimed_by=self.settings.name
                    )
                except Exception as exc:
                    if not is_unavailable(exc):
                        raise
                    # The database is away: keep the process, try again after a poll.
                    log.warning("claim failed, database unavailable: %s", exc)
                    self._slots.release()
                    await _wait_any(asyncio.Event(), stop, self.settings.poll_interval)
                    continue
                if batch is None:
                    last_full = False
                    self._slots.release()
                    await _wait_any(self._wake, stop, self.settings.poll_interval)
                    continue
                last_full = len(batch.command_ids) >= self.settings.batch_limit
                self._start(batch.batch_id, self._claimed(batch, claim_started))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self._finish_dispatches()

    async def _finish_dispatches(self) -> None:
        """On stop, wait up to `stop_grace` for the batches in flight, then stop waiting:
        a batch is safe to leave (Temporal runs its workflow on; a direct batch's
        transaction rolls back) and the sweep dispatches it again. Without the bound, a stop
        during a database outage would wait for the outage."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.settings.stop_grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("stopping with %d batch(es) in flight: left to the sweep", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def _light_lane(self, stop: asyncio.Event) -> None:
        """Claim for the tenants with nothing in flight, one batch at a time, while the main
        loop claims for everyone: a lone command of a quiet tenant goes out at once, in a
        batch of its own size, instead of waiting for a slot and then for a full batch of a
        busy tenant's commands. At low load the two lanes race for the same commands, and
        whichever claims first takes them (claims are serialised)."""
        while not stop.is_set():
            await _wait_any(self._light_wake, stop, self.settings.poll_interval)
            self._light_wake.clear()
            if stop.is_set():
                continue
            await self._light_slot.acquire()
            try:
                batch = await self._store.claim(
                    self.settings.batch_limit, claimed_by=f"{self.settings.name}:light",
                    light=True,
                )
            except Exception as exc:
                self._light_slot.release()
                if not is_unavailable(exc):
                    raise
                continue
            if batch is None:
                self._light_slot.release()
                continue
            self._start(batch.batch_id, self._claimed(batch, time.time_ns()),
                        slot=self._light_slot)

    def _claimed(self, batch: Batch, started_ns: int) -> Span:
        """The claim's span (the invalid one when not tracing): a child of the oldest
        command's trace context, linked to the other commands' traces; the batch's dispatch
        continues it."""
        log_event(log, "batch.claimed", level=logging.DEBUG, batch_id=str(batch.batch_id),
                  commands=len(batch.command_ids),
                  duration_ms=round((time.time_ns() - started_ns) / 1e6, 3))
        with telemetry.span(
            "intent.claim",
            {"intent.batch_id": str(batch.batch_id), "intent.commands": len(batch.command_ids),
             "intent.pump": self.settings.name},
            over=batch.traceparents, start_time=started_ns,
        ) as claim:
            return claim

    def _start(
        self, batch_id: UUID, parent: Span | None = None,
        slot: asyncio.Semaphore | None = None,
    ) -> None:
        """Dispatch in the background; the slot (a main one unless given) is freed and the
        loop woken when done (the batch's aggregates may hold back commands that can now
        be claimed)."""
        held = slot or self._slots

        async def dispatch() -> None:
            started = time.perf_counter()
            try:
                with telemetry.span("intent.batch", {"intent.batch_id": str(batch_id)},
                                    parent=parent):
                    await self._dispatcher.dispatch(batch_id)
                log_event(log, "batch.dispatched", level=logging.DEBUG,
                          batch_id=str(batch_id),
                          duration_ms=round((time.perf_counter() - started) * 1000, 3))
            except Exception:
                log_event(log, "batch.dispatch_failed",
                          f"dispatching batch {batch_id} failed; the sweep will retry it",
                          level=logging.ERROR, exc_info=True, batch_id=str(batch_id))
            finally:
                held.release()
                self._wake.set()
                self._light_wake.set()

        self.batches_dispatched += 1
        task = asyncio.create_task(dispatch())
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _sweep(self) -> None:
        try:
            await self._sweep_stale()
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("sweep skipped: %s", exc)

    async def _sweep_stale(self) -> None:
        for batch in await self._store.stale_batches(self.settings.sweep_after):
            if batch.dispatches >= self.settings.max_dispatches:
                await self._store.fail(batch.batch_id, {
                    "type": "abandoned", "attempt": batch.dispatches,
                    "message": f"dispatched {batch.dispatches} times and never finished",
                })
                continue
            log.warning(
                "batch %s dispatched %s ago and not finished: dispatching again",
                batch.batch_id, batch.age,
            )
            await self._store.redispatched(batch.batch_id)
            await self._slots.acquire()
            self._start(batch.batch_id)

    async def _listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self._listen_url, autocommit=True)
                async with conn:
                    await conn.execute(f"listen {CHANNEL}")
                    self._wake.set()  # catch up on whatever came while not listening
                    async for _ in conn.notifies():
                        self._wake.set()
                        self._light_wake.set()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                await _wait_any(asyncio.Event(), stop, 1.0)


async def _wait_any(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.create_task(first.wait()), asyncio.create_task(second.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
