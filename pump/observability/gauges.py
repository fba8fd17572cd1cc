"""Samplers behind the observable gauges: the long-running processes read these figures
from the database (or Temporal) every few seconds while metrics are on, and the gauges
report the last sample. Metric callbacks run on the exporter's thread and must not query."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from pump.observability import telemetry

if TYPE_CHECKING:
    from temporalio.client import Client

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 10.0
LAG_COUNT_CAP = 100_000  # counting further would cost more than the figure is worth
SAGA_STATES = ("Running", "Completed", "Failed", "TimedOut", "Terminated", "Canceled")


# -- the readings: one query each, shared with `intent status` -----------------------------


@dataclass(frozen=True)
class Lag:
    """Events committed after a consumer's checkpoint (at most LAG_COUNT_CAP counted) and
    how long the oldest of them has waited."""

    events: int
    capped: bool
    seconds: float


@dataclass(frozen=True)
class HeldBack:
    """The oldest open transaction with a transaction id: the feed stops before it until it
    ends (its events may still commit, so no follower may pass it)."""

    pid: int
    transaction_id: str
    age_seconds: float
    state: str | None
    application: str | None
    query: str | None


async def read_lag(conn: AsyncConnection[Any], consumer: str) -> Lag:
    """A consumer without a checkpoint is behind by the whole feed."""
    cur = await conn.execute(
        "select count(*), coalesce(extract(epoch from now() - min(recorded_at)), 0)"
        "::float8 from (select e.recorded_at from intent.events e"
        " left join intent.checkpoints c on c.consumer = %s"
        " where c.consumer is null"
        "   or (e.transaction_id, e.position) > (c.transaction_id, c.position)"
        " limit %s) behind",
        (consumer, LAG_COUNT_CAP),
    )
    row = await cur.fetchone()
    events, seconds = (int(row[0]), float(row[1])) if row else (0, 0.0)
    return Lag(events, events >= LAG_COUNT_CAP, seconds)


async def read_broadcast_lag(conn: AsyncConnection[Any]) -> Lag:
    """The broadcast relay's lag (supabase/migrations/*_broadcast_relay.sql): events after
    its checkpoint that still need their Realtime messages, and the oldest one's wait."""
    cur = await conn.execute(
        "select waiting_events, extract(epoch from oldest_waiting)::float8, capped"
        " from intent.broadcast_lag(%s::integer)", (LAG_COUNT_CAP,)
    )
    row = await cur.fetchone()
    if row is None:
        return Lag(0, False, 0.0)
    return Lag(int(row[0]), bool(row[2]), float(row[1]))


async def read_held_back(conn: AsyncConnection[Any]) -> HeldBack | None:
    cur = await conn.execute(
        "select pid, backend_xid::text, extract(epoch from now() - xact_start)::float8,"
        " state, application_name, left(query, 200) from pg_stat_activity"
        " where backend_xid is not null and pid <> pg_backend_pid()"
        " order by age(backend_xid) desc limit 1"
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return HeldBack(int(row[0]), row[1], float(row[2] or 0.0), row[3], row[4] or None, row[5])


async def count_sagas(client: Client, workflow_type: str) -> dict[str, int]:
    """Saga workflows by execution state, from Temporal's visibility (one count each)."""
    counts: dict[str, int] = {}
    for state in SAGA_STATES:
        query = f'WorkflowType = "{workflow_type}" AND ExecutionStatus = "{state}"'
        counts[state.lower()] = (await client.count_workflows(query)).count
    return counts


# -- the samplers behind the gauges ---------------------------------------------------------


async def sample_lag(
    pool: AsyncConnectionPool[AsyncConnection[Any]], consumers: Sequence[str]
) -> None:
    async with pool.connection() as conn:
        for consumer in consumers:
            lag = await read_lag(conn, consumer)
            telemetry.set_gauge("intent.projection.lag.events", lag.events, consumer=consumer)
            telemetry.set_gauge("intent.projection.lag.seconds", lag.seconds, consumer=consumer)


async def sample_broadcast_lag(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
    """How far Realtime's messages are behind the feed (the relay's checkpoint)."""
    async with pool.connection() as conn:
        lag = await read_broadcast_lag(conn)
    telemetry.set_gauge("intent.broadcast.lag.events", lag.events)
    telemetry.set_gauge("intent.broadcast.lag.seconds", lag.seconds)


async def sample_held_back(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
    """How long the oldest open transaction (which holds every feed consumer back) has run."""
    async with pool.connection() as conn:
        held = await read_held_back(conn)
    telemetry.set_gauge("intent.feed.held_back.seconds", held.age_seconds if held else 0.0)


async def sample_sagas(client: Client, workflow_type: str) -> None:
    for state, count in (await count_sagas(client, workflow_type)).items():
        telemetry.set_gauge("intent.sagas", count, state=state)


async def every(
    stop: asyncio.Event, sample: Callable[[], Awaitable[None]], seconds: float = SAMPLE_SECONDS
) -> None:
    """Call `sample` every `seconds` until `stop`; a failed sample is logged, not fatal."""
    while not stop.is_set():
        try:
            await sample()
        except Exception as exc:  # a gauge must never take its process down
            log.warning("metrics sample failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
