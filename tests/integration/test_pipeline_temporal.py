"""The command pipeline through Temporal: pumps start one workflow per batch, a worker runs
the batch activity. Real dev server, real PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from projections.shop import registry
from pump.batches.contracts import BatchRequest, workflow_id
from pump.batches.processor import BatchProcessor
from pump.batches.temporal import TemporalDispatcher, build_worker
from pump.batches.workflow import BatchWorkflow
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.ingress import Caller, begin_request, register, submit
from tests.support.pipeline import (
    assert_once_in_order,
    enqueue,
    events_by_stream,
    temporal_pipeline,
    wait_terminal,
)
from tests.support.streams import new_stream
from tests.support.tenants import TENANT_A, TENANT_B

pytestmark = pytest.mark.integration


async def test_two_pumps_and_two_workers_process_every_command_once_in_order(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    streams = [new_stream(TENANT_A if i % 2 else TENANT_B) for i in range(6)]
    ids = [await enqueue(pool, s, "register_item", sku="S", name="W") for s in streams]

    async def writer(seed: int) -> None:
        rng, user = random.Random(seed), uuid4()
        for _ in range(15):
            ids.append(await enqueue(pool, rng.choice(streams), "receive_stock", user_id=user,
                                     quantity=rng.randint(1, 5)))

    async with temporal_pipeline(pool, database_url, temporal_env, pumps=2, workers=2,
                                 batch_limit=16):
        await asyncio.gather(*(writer(seed) for seed in range(6)))
        final = await wait_terminal(pool, ids, seconds=90)
    assert set(final.values()) == {"processed"}
    await assert_once_in_order(pool, [s.aggregate_id for s in streams], ids)


async def test_starting_a_batch_workflow_twice_runs_the_batch_once(
    pool: AsyncConnectionPool[Conn], temporal_env: WorkflowEnvironment
) -> None:
    stream = new_stream()
    ids: list[UUID] = [await enqueue(pool, stream, "register_item", sku="S", name="W"),
                       await enqueue(pool, stream, "receive_stock", quantity=3)]
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    task_queue = f"intent-test-{uuid4().hex[:8]}"
    worker = build_worker(temporal_env.client, BatchProcessor(pool, registry), task_queue)
    async with worker:
        dispatcher = TemporalDispatcher(temporal_env.client, task_queue)
        await asyncio.gather(dispatcher.dispatch(batch.batch_id),
                             dispatcher.dispatch(batch.batch_id))
        # A later start (the sweep's) runs again and finds nothing open.
        again = await temporal_env.client.execute_workflow(
            BatchWorkflow.run, BatchRequest(batch_id=batch.batch_id),
            id=workflow_id(batch.batch_id) + "-again", task_queue=task_queue,
        )
    assert again.skipped
    final = await wait_terminal(pool, ids, seconds=10)
    assert set(final.values()) == {"processed"}
    rows = (await events_by_stream(pool, [stream.aggregate_id]))[stream.aggregate_id]
    assert [v for v, _, _ in rows] == [1, 2]


async def test_commands_submitted_by_many_users_through_the_ingress_run_once_in_order(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    tenants = [uuid4(), uuid4()]
    items = {tenant: [uuid4() for _ in range(4)] for tenant in tenants}
    callers = [Caller(tenant_id=tenant) for tenant in tenants for _ in range(3)]
    ids: list[UUID] = []

    async def user(caller: Caller, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            item = rng.choice(items[caller.tenant_id])
            answer = await submit(pool, caller, "inventory.receive_stock",
                                  {"item_id": str(item), "quantity": rng.randint(1, 5)})
            ids.append(UUID(answer["command_id"]))

    repeated = uuid4()
    async with temporal_pipeline(pool, database_url, temporal_env, pumps=2, workers=2,
                                 batch_limit=16):
        for tenant in tenants:
            for item in items[tenant]:
                answer = await submit(pool, Caller(tenant_id=tenant), "inventory.register_item",
                                      register(item))
                ids.append(UUID(answer["command_id"]))
        # A caller of its own: its two submissions run concurrently with the others'.
        again = Caller(tenant_id=tenants[0])
        twice = [submit(pool, again, "inventory.receive_stock",
                        {"item_id": str(items[tenants[0]][0]), "quantity": 100},
                        command_id=repeated) for _ in range(2)]
        await asyncio.gather(*(user(c, i) for i, c in enumerate(callers)), *twice)
        final = await wait_terminal(pool, [*ids, repeated], seconds=90)
    assert set(final.values()) == {"processed"}
    all_items = [item for tenant in tenants for item in items[tenant]]
    await assert_once_in_order(pool, all_items, {*ids, repeated})
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select e.tenant_id, c.tenant_id, c.user_id from intent.events e join"
            " intent.commands c on c.command_id = (e.metadata ->> 'causation_id')::uuid"
            " where e.aggregate_id = any(%s)", (all_items,),
        )
        rows_ = await cur.fetchall()
    assert all(event_tenant == command_tenant for event_tenant, command_tenant, _ in rows_)
    assert {user for _, _, user in rows_} >= {c.user_id for c in callers}


async def test_a_rejection_through_temporal_is_final_and_not_retried(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    caller = Caller(tenant_id=uuid4())
    item = uuid4()
    async with temporal_pipeline(pool, database_url, temporal_env, pumps=1, workers=1,
                                 batch_limit=16):
        first = await submit(pool, caller, "inventory.register_item", register(item))
        answer = await submit(pool, caller, "inventory.reserve_stock",
                              {"item_id": str(item), "order_id": str(uuid4()), "quantity": 2})
        final = await wait_terminal(pool, [UUID(first["command_id"]),
                                           UUID(answer["command_id"])], seconds=30)
    assert sorted(final.values()) == ["processed", "rejected"]
    async with pool.connection() as conn, conn.transaction():
        await begin_request(conn, caller)
        cur = await conn.execute("select public.command_status(%s)", (answer["command_id"],))
        row = await cur.fetchone()
    assert row is not None
    status = row[0]
    assert status["status"] == "rejected"
    assert status["error"]["code"] == "insufficient_stock"
    async with pool.connection() as conn:
        attempts = await (await conn.execute(
            "select attempts from intent.commands where command_id = %s",
            (answer["command_id"],),
        )).fetchone()
    assert attempts == (1,)
