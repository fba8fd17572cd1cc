"""Broadcast as shipped, for the whole run, and how long it takes to catch up.

Two ways a migrated database broadcasts appended events to Realtime:

  trigger  intent.events' statement-level trigger writes the messages in the append's own
           transaction: its cost is inside every timed Intent append, nothing lags;
  relay    the database has `intent.relay_broadcasts`: the trigger is gone and a relay
           (pump.broadcast.relay.BroadcastRelay) follows the feed from its checkpoint and
           writes the messages in pages. The bench runs one as a task in its own process,
           on a pool of its own, from start to end, and after each Intent side's timed part
           measures (untimed) how long the relay takes until no event waits.

Events waiting: `intent.broadcast_lag()` when the database has it and it answers a count,
else the events after the relay's checkpoint (consumer 'intent.realtime_relay') in feed
order."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from pump.projections.checkpoints import load_checkpoint
from pump.store.connections import Conn, open_pool
from tools.bench.database import BenchError

RELAY_CONSUMER = "intent.realtime_relay"
RELAY_FUNCTION = "intent.relay_broadcasts"
LAG_FUNCTION = "intent.broadcast_lag"
DRAIN_TIMEOUT_S = 120.0
DRAIN_POLL_S = 0.005

_COUNT_AFTER = (
    "select count(*) from intent.events"
    " where (transaction_id, position) > (%s::text::xid8, %s)"
)


class _Relay(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


class RelayError(RuntimeError):
    """The relay task ended before the run did."""


@dataclass(frozen=True)
class Drained:
    waiting: int  # events not yet broadcast when the timed part ended
    seconds: float  # from then until none waited
    timed_out: bool = False


class Broadcast:
    """Which way this database broadcasts; with a relay, how far behind it is."""

    def __init__(
        self, pool: AsyncConnectionPool[Conn], mode: str, *, lag_function: bool = False,
        relay: asyncio.Task[None] | None = None,
    ):
        self._pool = pool
        self.mode = mode
        self.lag_from = (
            None if mode == "trigger"
            else f"{LAG_FUNCTION}()" if lag_function
            else f"events after the {RELAY_CONSUMER!r} checkpoint in intent.checkpoints"
        )
        self._lag_function = lag_function
        self._relay = relay

    async def waiting(self) -> int:
        """Events appended but not yet broadcast (0 with the trigger)."""
        if self.mode == "trigger":
            return 0
        async with self._pool.connection() as conn:
            if self._lag_function:
                cur = await conn.execute(f"select * from {LAG_FUNCTION}()")
                row = await cur.fetchone()
                if row and isinstance(row[0], int) and not isinstance(row[0], bool):
                    return row[0]
            checkpoint = await load_checkpoint(conn, RELAY_CONSUMER)
            position = checkpoint.position
            cur = await conn.execute(
                _COUNT_AFTER, (str(position.transaction_id), position.position)
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def drain(self) -> Drained | None:
        """How long until the relay has broadcast everything appended so far (untimed by
        the caller); None with the trigger, which never lags."""
        if self.mode == "trigger":
            return None
        start = perf_counter()
        waiting = left = await self.waiting()
        while left > 0:
            self._check_relay()
            if perf_counter() - start > DRAIN_TIMEOUT_S:
                return Drained(waiting, perf_counter() - start, timed_out=True)
            await asyncio.sleep(DRAIN_POLL_S)
            left = await self.waiting()
        return Drained(waiting, perf_counter() - start)

    def _check_relay(self) -> None:
        if self._relay is not None and self._relay.done():
            error = None if self._relay.cancelled() else self._relay.exception()
            raise RelayError(f"the broadcast relay stopped during the run: {error!r}")

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "how": (
                "the statement-level trigger on intent.events, inside each append's "
                "transaction (nothing lags)" if self.mode == "trigger"
                else "pump.broadcast.relay.BroadcastRelay as a task in the bench's process, "
                "on a pool of its own, for the whole run; after each Intent side's timed "
                "part the bench waits (untimed) until no event waits"
            ),
            "events_waiting_from": self.lag_from,
        }


async def _has_function(pool: AsyncConnectionPool[Conn], name: str) -> bool:
    """Whether a function of that (schema-qualified) name exists, whatever its arguments
    (to_regproc would answer null for an overloaded name)."""
    schema, _, function = name.partition(".")
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select exists (select from pg_catalog.pg_proc p"
            " join pg_catalog.pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname = %s and p.proname = %s)",
            (schema, function),
        )
        row = await cur.fetchone()
    return bool(row and row[0])


def _relay_for(pool: AsyncConnectionPool[Conn]) -> _Relay:
    """`BroadcastRelay(pool)`, imported only now: the bench runs on databases (and code)
    from before the relay existed."""
    try:
        module = importlib.import_module("pump.broadcast.relay")
    except ImportError as exc:
        raise BenchError(
            f"the database has {RELAY_FUNCTION} (broadcasts by a relay, no trigger), but the "
            f"relay cannot be imported ({exc}): without it nothing would be broadcast"
        ) from None
    relay: _Relay = module.BroadcastRelay(pool)
    return relay


@asynccontextmanager
async def broadcast_as_shipped(
    url: str, pool: AsyncConnectionPool[Conn]
) -> AsyncIterator[Broadcast]:
    """The database's way of broadcasting, running for the block; with a relay, everything
    already waiting is broadcast before the block starts."""
    if not await _has_function(pool, RELAY_FUNCTION):
        yield Broadcast(pool, "trigger")
        return
    lag_function = await _has_function(pool, LAG_FUNCTION)
    relay_pool = await open_pool(url, min_size=1, max_size=2, name="bench-relay")
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(_relay_for(relay_pool).run(stop), name="broadcast-relay")
        try:
            broadcast = Broadcast(pool, "relay", lag_function=lag_function, relay=task)
            backlog = await broadcast.drain()
            if backlog is not None and backlog.timed_out:
                raise BenchError(
                    f"the broadcast relay did not catch up with the {backlog.waiting} events "
                    f"waiting in {DRAIN_TIMEOUT_S:g} s; the bench would measure its backlog"
                )
            yield broadcast
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
    finally:
        await relay_pool.close()
