"""The fulfilment saga's whole stack in the test's event loop — pump, batch worker, saga
worker and router — with the payment deadline shortened by configuration, and the steps of
an order through it: a stocked item, a placed order, the saga's outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Event, StreamId
from domain.orders import OrderFulfilment
from domain.saga import saga_command_id, saga_workflow_id
from projections.shop import application, registry, sagas
from pump.batches.processor import BatchProcessor
from pump.batches.pump import Pump, PumpSettings
from pump.batches.temporal import TemporalDispatcher, build_worker
from pump.projections.checkpoints import save_checkpoint
from pump.sagas.contracts import SagaOutcome
from pump.sagas.router import CONSUMER, SagaRouter
from pump.sagas.worker import build_saga_worker
from pump.store.connections import Conn
from tests.support.feed import head
from tests.support.pipeline import enqueue
from tests.support.tenants import TENANT_A

# The payment deadline of orders in the end-to-end tests: their sagas wait through a test.
E2E_PAYMENT_DEADLINE = 300.0


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
    # The router starts at the feed's head: what earlier tests appended (the shared session
    # feed holds every order they placed) is not this test's to route, and starting a saga
    # for each of those took longer than the test waits.
    async with pool.connection() as conn:
        await save_checkpoint(conn, CONSUMER, await head(pool))
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
            build_saga_worker(saga_client, pool, application, saga_queue):
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
