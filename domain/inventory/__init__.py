"""The inventory slice: stock items that orders reserve.

This module is the slice's wiring table. Names, schema versions, roles and upcasters are
declared here, in one place, rather than on the models: the aggregate needs the command
classes and the command declarations need the aggregate, so declaring them next to each
other would be a circular import.
"""

from __future__ import annotations

from pydantic import BaseModel

from domain.inventory.commands import ReceiveStock, RegisterItem, ReleaseStock, ReserveStock
from domain.inventory.events import (
    ItemRegistered,
    StockReceived,
    StockReleased,
    StockReserved,
    stock_received_v1_to_v2,
)
from domain.inventory.item import Item, ItemState
from domain.registry import Registry

WRITERS = frozenset({"authenticated", "service_role"})

registry = Registry()
registry.aggregate(Item)

registry.event("inventory.item_registered")(ItemRegistered)
registry.event("inventory.stock_received", version=2)(StockReceived)
registry.upcaster("inventory.stock_received", from_version=1)(stock_received_v1_to_v2)
registry.event("inventory.stock_reserved")(StockReserved)
registry.event("inventory.stock_released")(StockReleased)

# Every command names its item by `item_id`, and for now any signed-in user may send any.
COMMANDS: dict[str, type[BaseModel]] = {
    "inventory.register_item": RegisterItem,
    "inventory.receive_stock": ReceiveStock,
    "inventory.reserve_stock": ReserveStock,
    "inventory.release_stock": ReleaseStock,
}
for _name, _model in COMMANDS.items():
    registry.command(_name, aggregate=Item, aggregate_id="item_id", roles=WRITERS)(_model)

__all__ = [
    "Item",
    "ItemRegistered",
    "ItemState",
    "ReceiveStock",
    "RegisterItem",
    "ReleaseStock",
    "ReserveStock",
    "StockReceived",
    "StockReleased",
    "StockReserved",
    "registry",
]
