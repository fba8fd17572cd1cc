"""Stock levels per item: what the shop floor reads. Inline, so that a client that saw its
command processed reads the new level at once; published to Realtime."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from domain.contracts import Event
from domain.inventory.events import ItemRegistered, StockReceived, StockReleased, StockReserved
from projections.metadata import Column, Index, Op, Projection, SqlFunction, Table, Upsert


def stock_levels_handler(event: Event, payload: BaseModel) -> Sequence[Op]:
    at = event.metadata.occurred_at
    match payload:
        case ItemRegistered(item_id=item, sku=sku, name=name):
            return [Upsert(table="stock_levels", key={"item_id": item},
                           set={"sku": sku, "name": name, "updated_at": at})]
        case StockReceived(item_id=item, quantity=quantity):
            return [Upsert(table="stock_levels", key={"item_id": item},
                           set={"updated_at": at},
                           add={"on_hand": quantity})]
        case StockReserved(item_id=item, quantity=quantity):
            return [Upsert(table="stock_levels", key={"item_id": item},
                           set={"updated_at": at},
                           add={"on_hand": -quantity, "reserved": quantity})]
        case StockReleased(item_id=item, quantity=quantity):
            return [Upsert(table="stock_levels", key={"item_id": item},
                           set={"updated_at": at},
                           add={"on_hand": quantity, "reserved": -quantity})]
    return []


STOCK_LEVELS = Projection(
    name="stock_levels",
    version=1,
    reads=(
        "inventory.item_registered", "inventory.stock_received",
        "inventory.stock_reserved", "inventory.stock_released",
    ),
    tables=(
        Table(
            name="stock_levels",
            columns=(
                Column(name="tenant_id", type="uuid", nullable=False),
                Column(name="item_id", type="uuid", nullable=False),
                Column(name="sku", type="text"),
                Column(name="name", type="text"),
                Column(name="on_hand", type="bigint", nullable=False, default=0),
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
    handler=stock_levels_handler,
)
