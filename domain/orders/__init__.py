"""The orders slice: orders, and the saga that fulfils them against the inventory."""

from __future__ import annotations

from pydantic import BaseModel

from domain.orders.commands import CancelOrder, ConfirmPayment, PlaceOrder
from domain.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from domain.orders.fulfilment import FulfilmentState, OrderFulfilment
from domain.orders.order import Order, OrderState
from domain.registry import Registry

registry = Registry()
registry.aggregate(Order)
registry.event("orders.order_placed")(OrderPlaced)
registry.event("orders.order_paid")(OrderPaid)
registry.event("orders.order_cancelled")(OrderCancelled)

# Customers place, pay and cancel their orders; the fulfilment saga (service_role) cancels
# orders whose payment deadline passed.
COMMANDS: dict[str, type[BaseModel]] = {
    "orders.place_order": PlaceOrder,
    "orders.confirm_payment": ConfirmPayment,
    "orders.cancel_order": CancelOrder,
}
for _name, _model in COMMANDS.items():
    registry.command(
        _name, aggregate=Order, aggregate_id="order_id", roles={"authenticated", "service_role"}
    )(_model)

SAGAS = (OrderFulfilment,)

__all__ = [
    "SAGAS",
    "CancelOrder",
    "ConfirmPayment",
    "FulfilmentState",
    "Order",
    "OrderCancelled",
    "OrderFulfilment",
    "OrderPaid",
    "OrderPlaced",
    "OrderState",
    "PlaceOrder",
    "registry",
]
