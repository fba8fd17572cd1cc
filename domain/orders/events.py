"""What has happened to an order."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: UUID


class OrderPlaced(_Event):
    item_id: UUID
    quantity: int


class OrderPaid(_Event):
    pass


class OrderCancelled(_Event):
    reason: str
