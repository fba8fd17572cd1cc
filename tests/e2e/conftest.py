"""The whole local stack for client tests: the gateway (with the real `command` function
under Deno), and the pipeline — a pump and a Temporal worker with the app's inline
projections, and the broadcast relay — against the session's PostgreSQL and Temporal dev
server. With `saga_runtime`, also the saga router and the saga worker, as the runtime's role.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client as TemporalClient
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.orders import OrderFulfilment
from projections.shop import application, registry, sagas
from pump.projections.checkpoints import save_checkpoint
from pump.sagas.router import CONSUMER, SagaRouter
from pump.sagas.worker import build_saga_worker
from pump.store.connections import Conn, open_pool
from tests.support.broadcast import running_relay
from tests.support.db import runtime_url
from tests.support.feed import head
from tests.support.pipeline import shop_processor, temporal_pipeline
from tests.support.sagas import E2E_PAYMENT_DEADLINE
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


@pytest.fixture(scope="module")
async def saga_runtime(
    database_url: str, temporal_env: WorkflowEnvironment, pipeline: None
) -> AsyncIterator[None]:
    """`intent sagas` and `intent worker`'s saga half beside the pipeline, as the runtime's
    role; the router starts at the feed's head (earlier tests' orders are not ours)."""
    pool = await open_pool(runtime_url(database_url), min_size=1, max_size=4, name="sagas")
    queue, stop = f"sagas-e2e-{uuid4().hex[:8]}", asyncio.Event()
    try:
        async with pool.connection() as conn:
            await save_checkpoint(conn, CONSUMER, await head(pool))
        router = SagaRouter(
            pool, temporal_env.client, registry=registry, sagas=sagas, task_queue=queue,
            timer_seconds={OrderFulfilment.name: {"payment_deadline": E2E_PAYMENT_DEADLINE}},
            poll_interval=0.1,
        )
        client = await TemporalClient.connect(
            temporal_env.client.service_client.config.target_host,
            data_converter=pydantic_data_converter,
        )
        async with build_saga_worker(client, pool, application, queue):
            routing = asyncio.create_task(router.run(stop))
            try:
                yield
            finally:
                stop.set()
                await asyncio.wait_for(routing, timeout=30)
    finally:
        await pool.close()
