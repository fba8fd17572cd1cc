"""The framework runs an application it has never heard of: the test-only tally app
(tests/apps/tally.py), named by INTENT_APP alone, through the real processes — pump,
worker, saga router and projection runner — against the Temporal dev server."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from uuid import UUID, uuid4

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from domain.contracts import StreamId
from projections.ddl import projection_ddl
from pump.store.connections import Conn
from tests.apps import tally
from tests.support.pipeline import enqueue, wait_terminal
from tests.support.processes import intent_process

pytestmark = pytest.mark.integration


async def totals(pool: AsyncConnectionPool[Conn], tenant: UUID) -> dict[UUID, tuple[int, bool]]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select counter_id, total, closed from public.tally_totals where tenant_id = %s",
            (tenant,),
        )
        return {row[0]: (row[1], row[2]) for row in await cur.fetchall()}


async def event_types(pool: AsyncConnectionPool[Conn], counter: UUID) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select event_type from intent.events where aggregate_id = %s order by version",
            (counter,),
        )
        return [row[0] for row in await cur.fetchall()]


async def test_the_pipeline_runs_a_second_application_named_only_by_intent_app(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment,
) -> None:
    async with pool.connection() as conn:
        for statement in projection_ddl(tally.TALLY_TOTALS):
            await conn.execute(statement.encode())
    tenant, closing, open_ = uuid4(), uuid4(), uuid4()
    suffix = uuid4().hex[:8]
    env = {
        "INTENT_APP": "tests.apps.tally:application",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "INTENT_TASK_QUEUE": f"tally-batches-{suffix}",
        "INTENT_SAGA_TASK_QUEUE": f"tally-sagas-{suffix}",
    }
    ids = []
    for counter, amounts in ((closing, (3, 4, 5)), (open_, (2,))):
        stream = StreamId(tenant_id=tenant, aggregate_type="tally.counter", aggregate_id=counter)
        ids += [await enqueue(pool, stream, "tally.add", amount=a, app_registry=tally.registry)
                for a in amounts]
    try:
        with ExitStack() as stack:
            processes = {
                name: stack.enter_context(intent_process(database_url, *args, env=env))
                for name, args in {
                    "worker": ("worker",),
                    "pump": ("pump", "--poll-interval", "0.1"),
                    "sagas": ("sagas",),
                    "projections": ("projections", "run", "--poll-interval", "0.1"),
                }.items()
            }
            assert set((await wait_terminal(pool, ids, seconds=60)).values()) == {"processed"}
            deadline = asyncio.get_running_loop().time() + 60
            want = {closing: (12, True), open_: (2, False)}
            while await totals(pool, tenant) != want:
                assert asyncio.get_running_loop().time() < deadline, await totals(pool, tenant)
                for name, proc in processes.items():
                    assert proc.poll() is None, f"{name} stopped: {proc.stderr}"
                await asyncio.sleep(0.1)
        router_log = processes["sagas"].stderr.read() if processes["sagas"].stderr else ""
    finally:
        async with pool.connection() as conn:
            await conn.execute(sql.SQL("drop table if exists public.tally_totals"))
            await conn.execute("delete from intent.checkpoints where consumer like %s",
                               ("%tally_totals%",))
    # The saga closed the counter that reached the threshold, through the pump, once.
    assert await event_types(pool, closing) == ["tally.added"] * 3 + ["tally.closed"]
    assert await event_types(pool, open_) == ["tally.added"]
    # The router hosted the tally app's saga and nothing of the example shop's.
    assert "sagas: tally.closer;" in router_log
    assert "orders.fulfilment" not in router_log
