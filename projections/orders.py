"""Order summaries: one row per order with its current status. Asynchronous: it follows the
global feed, so it may trail the command by a moment (`intent status` shows the lag)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from domain.contracts import Event
from domain.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from projections.metadata import Column, Index, Op, Projection, Table, Upsert


def order_summaries_handler(event: Event, payload: BaseModel) -> Sequence[Op]:
    at = event.metadata.occurred_at
    match payload:
        case OrderPlaced(order_id=order, item_id=item, quantity=quantity):
            return [Upsert(table="order_summaries", key={"order_id": order},
                           set={"item_id": item, "quantity": quantity, "status": "placed",
                                "placed_at": at, "updated_at": at})]
        case OrderPaid(order_id=order):
            return [Upsert(table="order_summaries", key={"order_id": order},
                           set={"status": "paid", "updated_at": at})]
        case OrderCancelled(order_id=order, reason=reason):
            return [Upsert(table="order_summaries", key={"order_id": order},
                           set={"status": "cancelled", "cancel_reason": reason,
                                "updated_at": at})]
    return []


ORDER_SUMMARIES = Projection(
    name="order_summaries",
    version=1,
    reads=("orders.order_placed", "orders.order_paid", "orders.order_cancelled"),
    tables=(
        Table(
            name="order_summaries",
            columns=(
                Column(name="tenant_id", type="uuid", nullable=False),
                Column(name="order_id", type="uuid", nullable=False),
                Column(name="item_id", type="uuid"),
                Column(name="quantity", type="integer"),
                Column(name="status", type="text", nullable=False, default="placed"),
                Column(name="cancel_reason", type="text"),
                Column(name="placed_at", type="timestamptz"),
                Column(name="updated_at", type="timestamptz"),
            ),
            primary_key=("tenant_id", "order_id"),
            indexes=(Index(columns=("tenant_id", "status")),),
        ),
    ),
    readers=("authenticated",),
    realtime=False,
    mode="async",
    handler=order_summaries_handler,
)
