"""Samplers behind the observable gauges: the long-running processes read these figures
from the database (or Temporal) every few seconds while metrics are on, and the gauges
report the last sample. Metric callbacks run on the exporter's thread and must not query."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from pump import telemetry
from pump.database import Conn

if TYPE_CHECKING:
    from temporalio.client import Client

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 10.0
LAG_COUNT_CAP = 100_000  # counting further would cost more than the figure is worth
SAGA_STATES = ("Running", "Completed", "Failed", "TimedOut", "Terminated", "Canceled")


async def sample_lag(pool: AsyncConnectionPool[Conn], consumers: Sequence[str]) -> None:
    """Events after each consumer's checkpoint (capped), and the oldest one's age."""
    async with pool.connection() as conn:
        for consumer in consumers:
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
            telemetry.set_gauge("intent.projection.lag.events", events, consumer=consumer)
            telemetry.set_gauge("intent.projection.lag.seconds", seconds, consumer=consumer)


async def sample_held_back(pool: AsyncConnectionPool[Conn]) -> None:
    """How long the oldest open transaction (which holds every feed consumer back) has run."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select coalesce(max(extract(epoch from now() - xact_start)), 0)::float8"
            " from pg_stat_activity"
            " where backend_xid is not null and pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
    telemetry.set_gauge("intent.feed.held_back.seconds", float(row[0]) if row else 0.0)


async def sample_sagas(client: Client) -> None:
    """Saga workflows by execution state, from Temporal's visibility (one count each)."""
    from pump.saga_contracts import SAGA_WORKFLOW

    for state in SAGA_STATES:
        query = f'WorkflowType = "{SAGA_WORKFLOW}" AND ExecutionStatus = "{state}"'
        counted = await client.count_workflows(query)
        telemetry.set_gauge("intent.sagas", counted.count, state=state.lower())


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
