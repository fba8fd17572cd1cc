"""The fulfilment saga end to end: real Temporal dev server, pump, batch worker, saga worker
and router against a real PostgreSQL. The payment deadline is shortened by configuration
(the saga's timer override), never by sleeping through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.app import registry, sagas
from domain.contracts import Event, StreamId
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
from tests.integration.pipeline import enqueue, statuses, wait_terminal
from tests.integration.streams import TENANT_A

pytestmark = pytest.mark.integration


class HeldRouter(SagaRouter):
    """The real router, except that the test may hold back an event (by stream and type)
    until it lets it through: a router that lags behind the store, as during an outage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gates: dict[tuple[UUID, str], asyncio.Event] = {}

    def hold(self, stream: StreamId, event_type: str) -> asyncio.Event:
        """Hold back `event_type` of `stream` (and, the feed being in order, all after it)
        until the returned event is set."""
        return self._gates.setdefault((stream.aggregate_id, event_type), asyncio.Event())

    def release_all(self) -> None:
        for gate in self._gates.values():
            gate.set()

    async def _route(self, event: Event) -> None:
        gate = self._gates.get((event.stream.aggregate_id, event.event_type))
        if gate is not None:
            await gate.wait()
        await super()._route(event)


@dataclass(frozen=True)
class Stack:
    client: Client
    router: HeldRouter


@asynccontextmanager
async def saga_stack(
    pool: AsyncConnectionPool[Conn], url: str, env: WorkflowEnvironment, deadline: float
) -> AsyncIterator[Stack]:
    batches, saga_queue = f"batches-{uuid4().hex[:8]}", f"sagas-{uuid4().hex[:8]}"
    stop = asyncio.Event()
    router = HeldRouter(
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
            yield Stack(env.client, router)
        finally:
            router.release_all()
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


@asynccontextmanager
async def running_stack(
    pool: AsyncConnectionPool[Conn], url: str, env: WorkflowEnvironment, deadline: float
) -> AsyncIterator[Client]:
    async with saga_stack(pool, url, env, deadline) as stack:
        yield stack.client


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
    # The cancel first; the release only in answer to the order's order_cancelled.
    assert outcome.commands_issued == [step(order, "reserve"), step(order, "cancel"),
                                       step(order, "release")]
    assert set(final.values()) == {"processed"}
    stock = await repo.load(Item, item)
    assert stock.state.reservations == {}
    assert stock.state.available == 10
    cancelled = await repo.load(Order, order)
    assert cancelled.state.status == "cancelled"
    events = await repo.events.load(order)
    assert events[-1].metadata.causation_id is not None  # caused by the saga's step
    assert events[-1].metadata.role == "service_role"
    (released,) = [e for e in await repo.events.load(item)
                   if e.event_type == "inventory.stock_released"]
    assert released.metadata.causation_id == step(order, "release")
    release = await command_row(pool, step(order, "release"))
    assert release["causation_id"] == str(events[-1].event_id)  # order_cancelled


async def command_row(pool: AsyncConnectionPool[Conn], command_id: UUID) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select status, error, metadata->>'causation_id' from intent.commands"
            " where command_id = %s", (command_id,),
        )
        row = await cur.fetchone()
    assert row is not None, f"no command {command_id}"
    return {"status": row[0], "error": row[1], "causation_id": row[2]}


async def test_a_deadline_before_the_saga_sees_the_payment_leaves_the_paid_order_reserved(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    """The tester's outage, in order: the payment is committed, but the router is behind
    (held back here), so the deadline fires first. The saga asks to cancel, the paid order
    refuses, and no stock is released for it."""
    repo = AggregateRepository(pool, registry)
    async with saga_stack(pool, database_url, temporal_env, deadline=1.0) as stack:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order = StreamId(tenant_id=TENANT_A, aggregate_type="orders.order",
                         aggregate_id=uuid4())
        let_placed = stack.router.hold(order, "orders.order_placed")
        let_paid = stack.router.hold(order, "orders.order_paid")
        placed = await enqueue(pool, order, "orders.place_order",
                               item_id=item.aggregate_id, quantity=3)
        paid = await enqueue(pool, order, "orders.confirm_payment")
        assert set((await wait_terminal(pool, [placed, paid], seconds=30)).values()) == {
            "processed"}
        # The order is paid; the saga starts only now, and sees nothing of the payment.
        let_placed.set()
        await wait_terminal(pool, [step(order, "reserve")], seconds=30)
        await wait_terminal(pool, [step(order, "cancel")], seconds=30)  # the deadline
        cancel = await command_row(pool, step(order, "cancel"))
        assert cancel["status"] == "rejected"
        assert cancel["error"]["code"] == "already_paid"
        assert step(order, "release") not in await statuses(pool, [step(order, "release")])
        # The payment reaches the saga at last: it completes as paid.
        let_paid.set()
        outcome = await saga_result(stack.client, order)
    assert outcome.outcome == "paid"
    assert outcome.commands_issued == [step(order, "reserve"), step(order, "cancel")]
    assert await statuses(pool, [step(order, "release")]) == {}
    assert (await repo.load(Order, order)).state.status == "paid"
    stock = await repo.load(Item, item)
    assert stock.state.reservations == {order.aggregate_id: 3}
    assert stock.state.available == 7
    assert "inventory.stock_released" not in [
        e.event_type for e in await repo.events.load(item)]
