"""Order summaries: one row per order with its current status. Asynchronous: it follows the
global feed, so it may trail the command by a moment (`intent status` shows the lag)."""

from __future__ import annotations

from projections.metadata import Column, Index, Projection, Table
from projections.rules import OCCURRED_AT, On, Rules, literal, payload

ORDER = {"order_id": payload("order_id")}

order_summaries_rules = Rules(
    On("orders.order_placed", "order_summaries", key=ORDER,
       set={"item_id": payload("item_id"), "quantity": payload("quantity"),
            "status": literal("placed"), "placed_at": OCCURRED_AT, "updated_at": OCCURRED_AT}),
    On("orders.order_paid", "order_summaries", key=ORDER,
       set={"status": literal("paid"), "updated_at": OCCURRED_AT}),
    On("orders.order_cancelled", "order_summaries", key=ORDER,
       set={"status": literal("cancelled"), "cancel_reason": payload("reason"),
            "updated_at": OCCURRED_AT}),
)


ORDER_SUMMARIES = Projection(
    name="order_summaries",
    version=1,
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
    handler=order_summaries_rules,
)
