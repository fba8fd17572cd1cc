"""What callers may ask of a stock item. Each command names its item by `item_id`."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: UUID


class RegisterItem(_Command):
    sku: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class ReceiveStock(_Command):
    quantity: int = Field(gt=0)


class ReserveStock(_Command):
    order_id: UUID
    quantity: int = Field(gt=0)


class ReleaseStock(_Command):
    order_id: UUID
