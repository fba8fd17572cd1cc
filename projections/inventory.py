"""Stock levels per item: what the shop floor reads. Inline, so that a client that saw its
command processed reads the new level at once; published to Realtime. Declared as rules, so
a rebuild folds it in SQL (projections.set_fold).

The columns name what the aggregate names (domain/inventory/item.py): `available` is what is
free to sell (the item's `available`: on hand less what is reserved), `reserved` what open
reservations hold. Version 2 renamed `on_hand` (which held `available`) to say so; a
deployment that ran version 1 catches up with `intent projections rebuild stock_levels`."""

from __future__ import annotations

from projections.metadata import Column, Index, Projection, SqlFunction, Table
from projections.rules import OCCURRED_AT, On, Rules, neg, payload

ITEM = {"item_id": payload("item_id")}

stock_levels_rules = Rules(
    On("inventory.item_registered", "stock_levels", key=ITEM,
       set={"sku": payload("sku"), "name": payload("name"), "updated_at": OCCURRED_AT}),
    On("inventory.stock_received", "stock_levels", key=ITEM,
       set={"updated_at": OCCURRED_AT}, add={"available": payload("quantity")}),
    On("inventory.stock_reserved", "stock_levels", key=ITEM,
       set={"updated_at": OCCURRED_AT},
       add={"available": neg(payload("quantity")), "reserved": payload("quantity")}),
    On("inventory.stock_released", "stock_levels", key=ITEM,
       set={"updated_at": OCCURRED_AT},
       add={"available": payload("quantity"), "reserved": neg(payload("quantity"))}),
)


STOCK_LEVELS = Projection(
    name="stock_levels",
    version=2,
    tables=(
        Table(
            name="stock_levels",
            columns=(
                Column(name="tenant_id", type="uuid", nullable=False),
                Column(name="item_id", type="uuid", nullable=False),
                Column(name="sku", type="text"),
                Column(name="name", type="text"),
                Column(name="available", type="bigint", nullable=False, default=0),
                Column(name="reserved", type="bigint", nullable=False, default=0),
                Column(name="updated_at", type="timestamptz", nullable=False,
                       default=SqlFunction.NOW),
            ),
            primary_key=("tenant_id", "item_id"),
            indexes=(Index(columns=("tenant_id", "sku")),),
        ),
    ),
    readers=("authenticated",),
    realtime=True,
    mode="inline",
    handler=stock_levels_rules,
)
