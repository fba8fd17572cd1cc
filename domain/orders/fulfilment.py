"""The fulfilment saga: an order reserves its stock, then waits for payment until a
deadline; when the deadline passes first, it releases the stock (the compensation) and
cancels the order. A customer's own cancellation releases the stock too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from domain.saga import Action, CancelTimer, Complete, IssueCommand, Saga, StartTimer

PAYMENT_DEADLINE = "payment_deadline"


class FulfilmentState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["new", "awaiting_payment", "done"] = "new"
    order_id: UUID | None = None
    item_id: UUID | None = None


class OrderFulfilment(Saga[FulfilmentState]):
    name = "orders.fulfilment"
    state_model = FulfilmentState
    starts_on = frozenset({"orders.order_placed"})
    feeds_on = frozenset({"orders.order_paid", "orders.order_cancelled"})
    payment_deadline = timedelta(minutes=15)

    @classmethod
    def instance_of(cls, event: BaseModel) -> str | None:
        order_id = getattr(event, "order_id", None)
        return str(order_id) if order_id is not None else None

    @classmethod
    def react(
        cls, state: FulfilmentState, event: BaseModel
    ) -> tuple[FulfilmentState, Sequence[Action]]:
        match event:
            case OrderPlaced(order_id=order_id, item_id=item_id, quantity=quantity):
                if state.stage != "new":
                    return state, []
                reserve = IssueCommand(
                    "inventory.reserve_stock",
                    {"item_id": str(item_id), "order_id": str(order_id), "quantity": quantity},
                    key="reserve",
                )
                waiting = FulfilmentState(
                    stage="awaiting_payment", order_id=order_id, item_id=item_id
                )
                return waiting, [reserve, StartTimer(PAYMENT_DEADLINE, cls.payment_deadline)]
            case OrderPaid():
                if state.stage != "awaiting_payment":
                    return state, []
                done = state.model_copy(update={"stage": "done"})
                return done, [CancelTimer(PAYMENT_DEADLINE), Complete("paid")]
            case OrderCancelled():
                if state.stage != "awaiting_payment":
                    return state, []
                done = state.model_copy(update={"stage": "done"})
                return done, [CancelTimer(PAYMENT_DEADLINE), cls._release(state),
                              Complete("cancelled")]
            case _:
                return state, []

    @classmethod
    def on_timer(
        cls, state: FulfilmentState, timer: str
    ) -> tuple[FulfilmentState, Sequence[Action]]:
        if timer != PAYMENT_DEADLINE or state.stage != "awaiting_payment":
            return state, []
        cancel = IssueCommand(
            "orders.cancel_order",
            {"order_id": str(state.order_id), "reason": "payment deadline passed"},
            key="cancel",
        )
        done = state.model_copy(update={"stage": "done"})
        return done, [cls._release(state), cancel, Complete("expired")]

    @classmethod
    def _release(cls, state: FulfilmentState) -> IssueCommand:
        return IssueCommand(
            "inventory.release_stock",
            {"item_id": str(state.item_id), "order_id": str(state.order_id)},
            key="release",
        )
