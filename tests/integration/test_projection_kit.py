"""The projection kit a slice author tests read models with (tools/testing/projections.py,
through the `intent_projections` fixture of Intent's pytest plugin): given events, the rows,
folded on the session's real PostgreSQL by the Python handlers and, for Rules, in SQL too."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.contracts import Event
from domain.orders import OrderCancelled, OrderPaid, OrderPlaced
from projections.metadata import Column, Projection, Table, Upsert
from projections.orders import ORDER_SUMMARIES
from projections.rules import Rules
from tools.testing.projections import ProjectionKit

pytestmark = pytest.mark.integration

ITEM = UUID(int=9)


async def test_rules_fold_the_same_in_python_and_in_sql(
    intent_projections: ProjectionKit,
) -> None:
    first, second = intent_projections.stream("orders.order"), intent_projections.stream(
        "orders.order")
    folded = await intent_projections.given(
        ORDER_SUMMARIES,
        first.event(OrderPlaced(order_id=first.id.aggregate_id, item_id=ITEM, quantity=2)),
        second.event(OrderPlaced(order_id=second.id.aggregate_id, item_id=ITEM, quantity=1)),
        first.event(OrderPaid(order_id=first.id.aggregate_id)),
        second.event(OrderCancelled(order_id=second.id.aggregate_id, reason="late")),
    )
    assert folded.folds == ("python", "sql")
    rows = {r["order_id"]: (r["status"], r["quantity"], r["cancel_reason"])
            for r in folded.rows()}
    assert rows == {first.id.aggregate_id: ("paid", 2, None),
                    second.id.aggregate_id: ("cancelled", 1, "late")}
    assert {r["tenant_id"] for r in folded.rows()} == {intent_projections.tenant_id}


def per_item(event: Event, body: Any) -> list[Upsert]:
    return [Upsert(table="orders_per_item", key={"item_id": body.item_id},
                   add={"orders": 1, "units": body.quantity})]


ORDERS_PER_ITEM = Projection(
    name="orders_per_item",
    version=1,
    tables=(Table(name="orders_per_item", columns=(
        Column(name="tenant_id", type="uuid", nullable=False),
        Column(name="item_id", type="uuid", nullable=False),
        Column(name="orders", type="bigint", nullable=False, default=0),
        Column(name="units", type="bigint", nullable=False, default=0),
    ), primary_key=("tenant_id", "item_id")),),
    reads=("orders.order_placed",),
    mode="async",
    handler=per_item,
)


async def test_a_python_handler_is_folded_by_python_alone(
    intent_projections: ProjectionKit,
) -> None:
    orders = [intent_projections.stream("orders.order") for _ in range(3)]
    folded = await intent_projections.given(ORDERS_PER_ITEM, *(
        o.event(OrderPlaced(order_id=o.id.aggregate_id, item_id=ITEM, quantity=n))
        for n, o in enumerate(orders, start=1)))
    assert folded.folds == ("python",)
    assert [(r["item_id"], r["orders"], r["units"]) for r in folded.rows()] == [(ITEM, 3, 6)]


async def test_rules_that_disagree_with_their_sql_fold_fail_naming_the_table(
    intent_projections: ProjectionKit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kit that compared nothing would pass this: the Python path is made to disagree."""
    original = Rules.__call__

    def skewed(self: Rules, event: Event, body: Any) -> Any:
        return [Upsert(op.table, op.key, {**op.set, "quantity": 99}, op.add)
                if isinstance(op, Upsert) else op for op in original(self, event, body)]

    monkeypatch.setattr(Rules, "__call__", skewed)
    order = intent_projections.stream("orders.order")
    summaries = ORDER_SUMMARIES.model_copy(update={"tables": (ORDER_SUMMARIES.tables[0],)})
    with pytest.raises(AssertionError, match=r"order_summaries: the SQL fold gives other rows"):
        await intent_projections.given(summaries, order.event(
            OrderPlaced(order_id=order.id.aggregate_id, item_id=ITEM, quantity=1)))
