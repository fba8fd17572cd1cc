"""The projection kit a slice author tests read models with (tools/testing/projections.py,
through the `intent_projections` fixture of Intent's pytest plugin): given events, the rows,
folded on the session's real PostgreSQL by the Python handlers and, for Rules, in SQL too.

Inventory events only: the events stay in the session's feed, and no saga listens to these
(an order placed here would start a fulfilment saga in a later test's stack)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from domain.contracts import Event
from domain.inventory.events import ItemRegistered, StockReceived, StockReserved
from projections.inventory import STOCK_LEVELS
from projections.metadata import Column, Projection, Table, Upsert
from projections.rules import Rules
from tools.testing.projections import ProjectionKit

pytestmark = pytest.mark.integration

ITEM, ORDER = UUID(int=9), UUID(int=10)


async def test_rules_fold_the_same_in_python_and_in_sql(
    intent_projections: ProjectionKit,
) -> None:
    bolt, nut = intent_projections.stream("inventory.item"), intent_projections.stream(
        "inventory.item")
    b, n = bolt.id.aggregate_id, nut.id.aggregate_id
    folded = await intent_projections.given(
        STOCK_LEVELS,
        bolt.event(ItemRegistered(item_id=b, sku="B-1", name="Bolt")),
        nut.event(ItemRegistered(item_id=n, sku="N-1", name="Nut")),
        bolt.event(StockReceived(item_id=b, quantity=10)),
        bolt.event(StockReserved(item_id=b, order_id=ORDER, quantity=3)),
        nut.event(StockReceived(item_id=n, quantity=2)),
    )
    assert folded.folds == ("python", "sql")
    rows = {r["item_id"]: (r["sku"], r["available"], r["reserved"]) for r in folded.rows()}
    assert rows == {b: ("B-1", 7, 3), n: ("N-1", 2, 0)}
    assert {r["tenant_id"] for r in folded.rows()} == {intent_projections.tenant_id}


def per_item(event: Event, body: Any) -> list[Upsert]:
    return [Upsert(table="deliveries", key={"item_id": body.item_id},
                   add={"deliveries": 1, "units": body.quantity})]


DELIVERIES = Projection(
    name="deliveries",
    version=1,
    tables=(Table(name="deliveries", columns=(
        Column(name="tenant_id", type="uuid", nullable=False),
        Column(name="item_id", type="uuid", nullable=False),
        Column(name="deliveries", type="bigint", nullable=False, default=0),
        Column(name="units", type="bigint", nullable=False, default=0),
    ), primary_key=("tenant_id", "item_id")),),
    reads=("inventory.stock_received",),
    mode="async",
    handler=per_item,
)


async def test_a_python_handler_is_folded_by_python_alone(
    intent_projections: ProjectionKit,
) -> None:
    item = intent_projections.stream("inventory.item", ITEM)
    folded = await intent_projections.given(DELIVERIES, item.event(
        ItemRegistered(item_id=ITEM, sku="S", name="Bolt")), *(
        item.event(StockReceived(item_id=ITEM, quantity=n)) for n in (1, 2, 3)))
    assert folded.folds == ("python",)
    assert [(r["item_id"], r["deliveries"], r["units"]) for r in folded.rows()] == [(ITEM, 3, 6)]


async def test_rules_that_disagree_with_their_sql_fold_fail_naming_the_table(
    intent_projections: ProjectionKit, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A kit that compared nothing would pass this: the Python path is made to disagree."""
    original = Rules.__call__

    def skewed(self: Rules, event: Event, body: Any) -> Any:
        return [Upsert(op.table, op.key, {**op.set, "sku": "skewed"}, op.add)
                if isinstance(op, Upsert) else op for op in original(self, event, body)]

    monkeypatch.setattr(Rules, "__call__", skewed)
    item = intent_projections.stream("inventory.item")
    with pytest.raises(AssertionError, match=r"stock_levels: the SQL fold gives other rows"):
        await intent_projections.given(STOCK_LEVELS, item.event(
            ItemRegistered(item_id=item.id.aggregate_id, sku="S", name="Bolt")))
