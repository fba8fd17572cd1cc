"""The fulfilment saga end to end: real Temporal dev server, pump, batch worker, saga worker
and router against a real PostgreSQL. The payment deadline is shortened by configuration
(the saga's timer override), never by sleeping through it."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from domain.contracts import StreamId
from domain.inventory import Item
from domain.orders import Order
from projections.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from tests.support.pipeline import enqueue, statuses, wait_terminal
from tests.support.sagas import (
    place_order,
    running_stack,
    saga_result,
    saga_stack,
    step,
    stocked_item,
)
from tests.support.tenants import TENANT_A

pytestmark = pytest.mark.integration


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
