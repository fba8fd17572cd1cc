"""The whole local stack for client tests: the gateway (with the real `command` function
under Deno), and the pipeline — a pump and a Temporal worker with the app's inline
projections, and the broadcast relay — against the session's PostgreSQL and Temporal dev
server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from pump.store.connections import Conn, open_pool
from tests.support.broadcast import running_relay
from tests.support.pipeline import shop_processor, temporal_pipeline
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
    """A pump and a worker as `intent pump` and `intent worker` run them, and the broadcast
    relay, in this loop, for one module: a pump claims every pending command (and a relay
    sends every event), so it must not outlive these tests."""
    pool: AsyncConnectionPool[Conn] = await open_pool(
        database_url, min_size=2, max_size=8, name="e2e"
    )
    try:
        async with temporal_pipeline(
            pool, database_url, temporal_env, queue="intent-e2e",
            processor=lambda: shop_processor(pool),
        ), running_relay(pool):
            yield
    finally:
        await pool.close()
