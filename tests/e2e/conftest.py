"""The whole local stack for client tests: the gateway (with the real `command` function
under Deno), and the pipeline — a pump and a Temporal worker with the app's inline
projections — against the session's PostgreSQL and Temporal dev server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from domain.app import registry
from projections.app import catalog
from projections.inline import InlineProjections
from pump.batch_processor import BatchProcessor
from pump.database import Conn, open_pool
from pump.pump import Pump, PumpSettings
from pump.temporal import TemporalDispatcher, build_worker
from tools.gateway.testing import RunningGateway, running_gateway
from tools.settings import REPO_ROOT


@pytest.fixture(scope="session")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with running_gateway(
        database_url,
        functions_dir=REPO_ROOT / "supabase" / "functions",
        functions_config=REPO_ROOT / "supabase" / "config.toml",
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def pipeline(
    database_url: str, temporal_env: WorkflowEnvironment
) -> AsyncIterator[None]:
    """A pump and a worker as `intent pump` and `intent worker` run them, in this loop, for
    one module: a pump claims every pending command, so it must not outlive these tests."""
    pool: AsyncConnectionPool[Conn] = await open_pool(
        database_url, min_size=2, max_size=8, name="e2e"
    )
    queue = f"intent-e2e-{uuid4().hex[:8]}"
    processor = BatchProcessor(
        pool, registry, inline=InlineProjections(catalog, registry=registry)
    )
    worker = build_worker(temporal_env.client, processor, queue)
    stop = asyncio.Event()
    pump = Pump(pool, database_url, TemporalDispatcher(temporal_env.client, queue),
                PumpSettings(poll_interval=0.2))
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(pump.run(stop))]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(tasks[1], timeout=30)
        await worker.shutdown()
        await asyncio.gather(tasks[0], return_exceptions=True)
        await pool.close()
