"""What callers may ask of an order. Each command names its order by `order_id`."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: UUID


class PlaceOrder(_Command):
    item_id: UUID
    quantity: int = Field(gt=0, le=10_000)


class ConfirmPayment(_Command):
    pass


class CancelOrder(_Command):
    reason: str = Field(min_length=1, max_length=200)
