"""The order aggregate: placed, then either paid or cancelled, never both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.aggregate import Aggregate
from domain.errors import DomainRejection
from domain.orders.commands import CancelOrder, ConfirmPayment, PlaceOrder
from domain.orders.events import OrderCancelled, OrderPaid, OrderPlaced


class OrderState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["new", "placed", "paid", "cancelled"] = "new"
    item_id: UUID | None = None
    quantity: int = 0


class Order(Aggregate[OrderState]):
    type_name = "orders.order"
    state_model = OrderState
    snapshot_every = 100

    @classmethod
    def decide(cls, command: BaseModel, state: OrderState) -> Sequence[BaseModel]:
        match command:
            case PlaceOrder(order_id=order_id, item_id=item_id, quantity=quantity):
                if state.status != "new":
                    raise DomainRejection("already_placed", "this order was placed already")
                return [OrderPlaced(order_id=order_id, item_id=item_id, quantity=quantity)]
            case ConfirmPayment(order_id=order_id):
                if state.status == "new":
                    raise DomainRejection("order_not_placed", "no such order was placed")
                if state.status == "cancelled":
                    raise DomainRejection("order_cancelled", "the order was cancelled")
                if state.status == "paid":
                    return []  # a repeated confirmation
                return [OrderPaid(order_id=order_id)]
            case CancelOrder(order_id=order_id, reason=reason):
                if state.status == "new":
                    raise DomainRejection("order_not_placed", "no such order was placed")
                if state.status == "paid":  # the fulfilment saga's deadline relies on it
                    raise DomainRejection("already_paid", "a paid order cannot be cancelled")
                if state.status == "cancelled":
                    return []
                return [OrderCancelled(order_id=order_id, reason=reason)]
            case _:
                cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: OrderState, event: BaseModel) -> OrderState:
        match event:
            case OrderPlaced(item_id=item_id, quantity=quantity):
                return state.model_copy(
                    update={"status": "placed", "item_id": item_id, "quantity": quantity}
                )
            case OrderPaid():
                return state.model_copy(update={"status": "paid"})
            case OrderCancelled():
                return state.model_copy(update={"status": "cancelled"})
            case _:
                cls.unhandled_event(event)
