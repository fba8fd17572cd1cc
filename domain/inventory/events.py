"""What has happened to a stock item. Once recorded, a shape is forever: change it by adding
a new schema version and an upcaster from the old one, never by editing it in place."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: UUID


class ItemRegistered(_Event):
    sku: str
    name: str


class StockReceived(_Event):
    """Schema version 2. Version 1 called the quantity `qty`."""

    quantity: int


class StockReserved(_Event):
    order_id: UUID
    quantity: int


class StockReleased(_Event):
    order_id: UUID
    quantity: int


def stock_received_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: `qty` was renamed to `quantity` to match the commands."""
    upgraded = {key: value for key, value in payload.items() if key != "qty"}
    upgraded["quantity"] = payload["qty"]
    return upgraded
