"""The broadcast relay: follows the global feed and writes every event's Realtime messages.

Appends write no messages (a trigger used to, at a fifth to a third of a single-event
append's cost). The relay calls `intent.relay_broadcasts(page)`
(supabase/migrations/*_broadcast_relay.sql) in a loop; one call is one transaction that
takes the relay's checkpoint (FOR UPDATE SKIP LOCKED: a second relay does nothing meanwhile),
reads the next events of the feed after it (never past an open transaction), inserts both
topics' messages for them in feed order and moves the checkpoint. Messages and checkpoint
commit together, so every event is broadcast exactly once whatever stops the relay, and an
error (hosted: a day without a realtime.messages partition) leaves the checkpoint where it
was: the relay logs it, notes it on the checkpoint, backs off and tries again.

The calls commit synchronously, like appends. Asynchronous commits would save the relay a
flush per call (one per pause, not per event), but Realtime decodes only WAL that reached
disk, and when nothing else commits the WAL writer flushes at its own pace
(`wal_writer_delay`, 200 ms by default): on a quiet hosted project that delay would land on
every message.

After a partial page the relay waits as long as when idle, so that more commits gather: a
call's fixed cost is most of a small call's (measured: 75 µs of database CPU per event at a
10 ms pause, 40 µs at 50 ms, 35 µs in pages of a thousand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from domain.feed import FeedPosition
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.projections.checkpoints import record_error
from pump.store.connections import Conn

log = logging.getLogger("intent.broadcast")

CONSUMER = "intent.realtime_relay"  # its row in intent.checkpoints (made by the migration)
MAX_PAGE = 100_000  # what intent.relay_broadcasts accepts
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 15.0

# One round trip, one transaction (the pool's connections are autocommit).
_STEP = (
    "select r.relayed, r.checkpoint_transaction_id::text, r.checkpoint_position"
    " from intent.relay_broadcasts(%s::integer) r"
)


class BroadcastRelay:
    """Calls the relay step until stopped: at once again after a full page, else after
    `idle_seconds`. The pause is what an event waits at most before its messages are
    written, so it stays short: an idle call is a read (an index probe; no lock, no
    transaction id)."""

    def __init__(
        self, pool: AsyncConnectionPool[Conn], *, page: int = 1000, idle_seconds: float = 0.05
    ):
        if not 1 <= page <= MAX_PAGE:
            raise ValueError(f"page must be between 1 and {MAX_PAGE:,}")
        if idle_seconds <= 0:
            raise ValueError("idle_seconds must be positive")
        self._pool = pool
        self._page = page
        self._idle = idle_seconds
        self.relayed = 0  # events passed since this relay started
        self.checkpoint: FeedPosition | None = None  # after the last call that held it

    async def relay_once(self) -> int:
        """One call of intent.relay_broadcasts: the events it passed (0 when there were
        none, or when another relay holds the checkpoint). Raises what the database raised;
        the checkpoint has not moved then."""
        started = time.time_ns()
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_STEP, (self._page,))).fetchone()
        relayed = int(row[0]) if row else 0
        if row is not None and row[1] is not None:
            self.checkpoint = FeedPosition(int(row[1]), int(row[2]))
        if relayed:
            self.relayed += relayed
            at = self._where()
            # A span per call that sent something, from the call's start (cheap when off).
            with telemetry.span("intent.broadcast.relay", {
                "intent.broadcast.events": relayed, "intent.broadcast.checkpoint": at,
            }, start_time=started):
                pass
            log_event(log, "broadcast.relayed", f"relayed {relayed} event(s), checkpoint {at}",
                      level=logging.DEBUG, events=relayed, checkpoint=at,
                      duration_ms=round((time.time_ns() - started) / 1e6, 2))
        return relayed

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; errors are logged and retried with backoff (0.5 s
        doubling to 15 s), and the lag gauges are sampled while metrics are on."""
        samplers: list[asyncio.Task[None]] = []
        if telemetry.metering():
            from pump.observability.gauges import every, sample_broadcast_lag

            samplers.append(asyncio.create_task(
                every(stop, lambda: sample_broadcast_lag(self._pool))))
        try:
            await self._loop(stop)
        finally:
            for task in samplers:
                task.cancel()
            await asyncio.gather(*samplers, return_exceptions=True)

    async def _loop(self, stop: asyncio.Event) -> None:
        delay, failures = BACKOFF_FIRST, 0
        while not stop.is_set():
            try:
                relayed = await self.relay_once()
            except Exception as exc:  # the database's or the network's: log, wait, again
                failures += 1
                await self._failed(exc, failures, delay)
                await _sleep(stop, delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if failures:
                log_event(log, "broadcast.resumed",
                          f"broadcast relay resumed after {failures} failed attempt(s)",
                          attempts=failures, checkpoint=self._where())
                delay, failures = BACKOFF_FIRST, 0
            if relayed >= self._page:
                continue  # more is waiting
            await _sleep(stop, self._idle)

    async def _failed(self, exc: Exception, attempts: int, delay: float) -> None:
        message = " ".join(str(exc).split()) or type(exc).__name__
        log_event(log, "broadcast.error",
                  f"broadcast relay step failed (the checkpoint stays at {self._where()}): "
                  f"{message}; retrying in {delay:g} s",
                  level=logging.ERROR, error=message, error_type=type(exc).__name__,
                  attempts=attempts, retry_in_seconds=delay)
        error: dict[str, Any] = {"message": message, "type": type(exc).__name__,
                                 "attempts": attempts, "retry_in_seconds": delay}
        try:  # shown by `intent status`; the next call that succeeds clears it
            async with self._pool.connection(timeout=5) as conn:
                await record_error(conn, CONSUMER, error)
        except Exception as again:  # the database may be the problem: the log has it
            log.warning("broadcast relay: could not record the error: %s", again)

    def _where(self) -> str:
        at = self.checkpoint
        return "-" if at is None else f"{at.transaction_id}/{at.position}"


async def relay_problem(pool: AsyncConnectionPool[Conn]) -> str | None:
    """Why this database cannot be relayed from (no relay function, not allowed to run it),
    or None: checked once at start, so that a missing migration is said plainly."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select case when to_regnamespace('intent') is null then 'missing'"
            " when not has_schema_privilege('intent', 'usage') then 'denied'"
            " when to_regprocedure('intent.relay_broadcasts(integer)') is null then 'missing'"
            " when not has_function_privilege("
            "to_regprocedure('intent.relay_broadcasts(integer)'), 'execute') then 'denied' end"
        )).fetchone()
    found = row[0] if row else None
    if found == "missing":
        return "the database has no intent.relay_broadcasts(): run the migrations first"
    if found == "denied":
        return ("this database role may not execute intent.relay_broadcasts(): connect as "
                "the runtime role (intent_worker)")
    return None


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
