"""The fulfilment saga: an order reserves its stock, then waits for payment until a
deadline. When the deadline passes first, the saga asks the order to cancel, and releases
the stock only once the order says it was cancelled (`order_cancelled`): the order, not the
saga's view of it, decides. A payment the saga has not seen yet makes the order refuse the
cancel (`already_paid`), and the stock stays reserved for the paid order. A customer's own
cancellation releases the stock too. A cancel that gets no answer (its command failed rather
than being decided) is asked again, a few times, and then the saga ends `cancel_unanswered`
with the stock still reserved, for someone to look at: never released on a guess."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.orders.events import OrderCancelled, OrderPaid, OrderPlaced
from domain.saga import Action, CancelTimer, Complete, IssueCommand, Saga, StartTimer

PAYMENT_DEADLINE = "payment_deadline"
CANCEL_RETRY = "cancel_retry"
CANCEL_ATTEMPTS = 3

Stage = Literal["new", "awaiting_payment", "cancelling", "done"]


class FulfilmentState(BaseModel):
    """`cancelling`: the deadline passed and the cancel was issued; the order's answer (paid
    or cancelled) has not reached the saga yet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage = "new"
    order_id: UUID | None = None
    item_id: UUID | None = None
    cancels: int = 0  # cancel commands issued


class OrderFulfilment(Saga[FulfilmentState]):
    name = "orders.fulfilment"
    state_model = FulfilmentState
    starts_on = frozenset({"orders.order_placed"})
    feeds_on = frozenset({"orders.order_paid", "orders.order_cancelled"})
    payment_deadline = timedelta(minutes=15)
    cancel_retry = timedelta(minutes=1)

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
                # Also after the deadline: the order refused (or will refuse) our cancel.
                if state.stage not in ("awaiting_payment", "cancelling"):
                    return state, []
                return cls._done(state), [*cls._stop_timer(state), Complete("paid")]
            case OrderCancelled():
                # The fact that allows the compensation, whoever asked for the cancel.
                if state.stage not in ("awaiting_payment", "cancelling"):
                    return state, []
                outcome = "expired" if state.stage == "cancelling" else "cancelled"
                return cls._done(state), [
                    *cls._stop_timer(state), cls._release(state), Complete(outcome)
                ]
            case _:
                return state, []

    @classmethod
    def on_timer(
        cls, state: FulfilmentState, timer: str
    ) -> tuple[FulfilmentState, Sequence[Action]]:
        """The deadline only asks: the stock is released on the order's `order_cancelled`,
        never here, since a payment may be committed that the saga has not seen yet."""
        if timer == PAYMENT_DEADLINE and state.stage == "awaiting_payment":
            return cls._ask_to_cancel(state.model_copy(update={"stage": "cancelling"}))
        if timer == CANCEL_RETRY and state.stage == "cancelling":
            if state.cancels >= CANCEL_ATTEMPTS:
                return cls._done(state), [Complete("cancel_unanswered")]
            return cls._ask_to_cancel(state)
        return state, []

    @classmethod
    def _ask_to_cancel(
        cls, state: FulfilmentState
    ) -> tuple[FulfilmentState, Sequence[Action]]:
        """Issue the cancel (each attempt a step of its own) and wait for its answer."""
        attempt = state.cancels + 1
        cancel = IssueCommand(
            "orders.cancel_order",
            {"order_id": str(state.order_id), "reason": "payment deadline passed"},
            key="cancel" if attempt == 1 else f"cancel-{attempt}",
        )
        return (state.model_copy(update={"cancels": attempt}),
                [cancel, StartTimer(CANCEL_RETRY, cls.cancel_retry)])

    @classmethod
    def _done(cls, state: FulfilmentState) -> FulfilmentState:
        return state.model_copy(update={"stage": "done"})

    @classmethod
    def _stop_timer(cls, state: FulfilmentState) -> list[Action]:
        """The timer the saga is waiting on in its stage."""
        waiting_on = {"awaiting_payment": PAYMENT_DEADLINE, "cancelling": CANCEL_RETRY}
        timer = waiting_on.get(state.stage)
        return [CancelTimer(timer)] if timer is not None else []

    @classmethod
    def _release(cls, state: FulfilmentState) -> IssueCommand:
        return IssueCommand(
            "inventory.release_stock",
            {"item_id": str(state.item_id), "order_id": str(state.order_id)},
            key="release",
        )
