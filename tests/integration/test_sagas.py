"""The fulfilment saga end to end: real Temporal dev server, pump, batch worker, saga worker
and router against a real PostgreSQL. The payment deadline is shortened by configuration
(the saga's timer override), never by sleeping through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.app import registry, sagas
from domain.contracts import StreamId
from domain.inventory import Item
from domain.orders import Order, OrderFulfilment
from domain.saga import saga_command_id, saga_workflow_id
from pump.aggregates import AggregateRepository
from pump.batch_processor import BatchProcessor
from pump.database import Conn
from pump.pump import Pump, PumpSettings
from pump.saga_contracts import SagaOutcome
from pump.saga_router import SagaRouter
from pump.saga_worker import build_saga_worker
from pump.temporal import TemporalDispatcher, build_worker
from tests.integration.pipeline import enqueue, wait_terminal
from tests.integration.streams import TENANT_A

pytestmark = pytest.mark.integration


@asynccontextmanager
async def running_stack(
    pool: AsyncConnectionPool[Conn], url: str, env: WorkflowEnvironment, deadline: float
) -> AsyncIterator[Client]:
    batches, saga_queue = f"batches-{uuid4().hex[:8]}", f"sagas-{uuid4().hex[:8]}"
    stop = asyncio.Event()
    router = SagaRouter(
        pool, env.client, registry=registry, sagas=sagas, task_queue=saga_queue,
        timer_seconds={OrderFulfilment.name: {"payment_deadline": deadline}},
        poll_interval=0.1,
    )
    pump = Pump(pool, url, TemporalDispatcher(env.client, batches),
                PumpSettings(poll_interval=0.1))
    saga_client = await Client.connect(
        env.client.service_client.config.target_host, data_converter=pydantic_data_converter
    )
    async with build_worker(env.client, BatchProcessor(pool, registry), batches), \
            build_saga_worker(saga_client, pool, registry, saga_queue):
        tasks = [asyncio.create_task(pump.run(stop)), asyncio.create_task(router.run(stop))]
        try:
            yield env.client
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


async def stocked_item(
    pool: AsyncConnectionPool[Conn], on_hand: int
) -> tuple[StreamId, list[UUID]]:
    item = StreamId(tenant_id=TENANT_A, aggregate_type="inventory.item", aggregate_id=uuid4())
    ids = [await enqueue(pool, item, "register_item", sku="S", name="W"),
           await enqueue(pool, item, "receive_stock", quantity=on_hand)]
    return item, ids


async def place_order(
    pool: AsyncConnectionPool[Conn], item: StreamId, quantity: int
) -> tuple[StreamId, UUID]:
    order = StreamId(tenant_id=TENANT_A, aggregate_type="orders.order", aggregate_id=uuid4())
    command = await enqueue(pool, order, "orders.place_order",
                            item_id=item.aggregate_id, quantity=quantity)
    return order, command


async def saga_result(client: Client, order: StreamId) -> SagaOutcome:
    """The saga's outcome, once the router has started it and it has finished (bounded)."""
    handle = client.get_workflow_handle(
        saga_workflow_id(OrderFulfilment.name, order.tenant_id, str(order.aggregate_id)),
        result_type=SagaOutcome,
    )
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            return await asyncio.wait_for(handle.result(), timeout=60)
        except RPCError as exc:
            not_yet = exc.status == RPCStatusCode.NOT_FOUND
            if not not_yet or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


def step(order: StreamId, key: str) -> UUID:
    return saga_command_id(OrderFulfilment.name, order.tenant_id, str(order.aggregate_id), key)


async def test_a_paid_order_keeps_its_reservation(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    repo = AggregateRepository(pool, registry)
    async with running_stack(pool, database_url, temporal_env, deadline=60) as client:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order, placed = await place_order(pool, item, quantity=3)
        await wait_terminal(pool, [placed, step(order, "reserve")], seconds=30)
        paid = await enqueue(pool, order, "orders.confirm_payment")
        outcome = await saga_result(client, order)
        await wait_terminal(pool, [paid], seconds=30)
    assert outcome.outcome == "paid"
    assert outcome.commands_issued == [step(order, "reserve")]
    stock = await repo.load(Item, item)
    assert stock.state.reservations == {order.aggregate_id: 3}
    assert stock.state.available == 7
    assert (await repo.load(Order, order)).state.status == "paid"


async def test_an_unpaid_order_is_cancelled_at_the_deadline_and_its_stock_released(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    repo = AggregateRepository(pool, registry)
    async with running_stack(pool, database_url, temporal_env, deadline=1.0) as client:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order, placed = await place_order(pool, item, quantity=4)
        outcome = await saga_result(client, order)
        final = await wait_terminal(
            pool, [placed, step(order, "reserve"), step(order, "release"),
                   step(order, "cancel")], seconds=30,
        )
    assert outcome.outcome == "expired"
    assert set(final.values()) == {"processed"}
    stock = await repo.load(Item, item)
    assert stock.state.reservations == {}
    assert stock.state.available == 10
    cancelled = await repo.load(Order, order)
    assert cancelled.state.status == "cancelled"
    events = await repo.events.load(order)
    assert events[-1].metadata.causation_id is not None  # caused by the saga's step
    assert events[-1].metadata.role == "service_role"
