"""The fulfilment saga as a pure definition (given/when/then), the order's rule it relies on
(a paid order refuses a cancel), and the saga registry's rules."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from pydantic import BaseModel

from domain.errors import DomainRejection, RegistryError
from domain.orders import (
    CancelOrder,
    ConfirmPayment,
    FulfilmentState,
    Order,
    OrderCancelled,
    OrderFulfilment,
    OrderPaid,
    OrderPlaced,
    OrderState,
)
from domain.orders.fulfilment import CANCEL_ATTEMPTS, CANCEL_RETRY, PAYMENT_DEADLINE
from domain.saga import (
    CancelTimer,
    Complete,
    IssueCommand,
    Saga,
    SagaRegistry,
    StartTimer,
    saga_command_id,
)
from domain.testing import saga_scenarios
from projections.shop import registry


def placed() -> tuple[OrderPlaced, FulfilmentState]:
    event = OrderPlaced(order_id=uuid4(), item_id=uuid4(), quantity=3)
    state, _ = OrderFulfilment.react(OrderFulfilment.initial_state(), event)
    return event, state


saga = saga_scenarios(registry)


def test_a_placed_order_reserves_its_stock_and_starts_the_payment_deadline() -> None:
    event = OrderPlaced(order_id=uuid4(), item_id=uuid4(), quantity=3)
    run = saga(OrderFulfilment, event).then(
        IssueCommand(
            "inventory.reserve_stock",
            {"item_id": str(event.item_id), "order_id": str(event.order_id), "quantity": 3},
            key="reserve",
        ),
        StartTimer(PAYMENT_DEADLINE, timedelta(minutes=15)),
    )
    assert run.state.stage == "awaiting_payment"


def test_payment_before_the_deadline_completes_without_compensation() -> None:
    event = OrderPlaced(order_id=uuid4(), item_id=uuid4(), quantity=3)
    run = saga(OrderFulfilment, event).when(OrderPaid(order_id=event.order_id))
    run.then(CancelTimer(PAYMENT_DEADLINE), Complete("paid"))
    assert (run.state.stage, run.outcome, run.timers) == ("done", "paid", ())


def deadline_passed() -> tuple[OrderPlaced, FulfilmentState]:
    event, state = placed()
    state, _ = OrderFulfilment.on_timer(state, PAYMENT_DEADLINE)
    return event, state


def test_the_deadline_asks_the_order_to_cancel_and_releases_nothing_yet() -> None:
    # given a placed order whose stock the saga reserved
    event, state = placed()
    # when the payment deadline passes
    state, actions = OrderFulfilment.on_timer(state, PAYMENT_DEADLINE)
    # then the saga only asks the order to cancel, and waits for its answer
    assert actions == [
        IssueCommand(
            "orders.cancel_order",
            {"order_id": str(event.order_id), "reason": "payment deadline passed"},
            key="cancel",
        ),
        StartTimer(CANCEL_RETRY, timedelta(minutes=1)),
    ]
    assert state.stage == "cancelling"


def test_the_order_cancelled_after_the_deadline_releases_the_stock() -> None:
    # given the deadline passed and the saga asked for the cancel
    event, state = deadline_passed()
    # when the order says it was cancelled
    state, actions = OrderFulfilment.react(
        state, OrderCancelled(order_id=event.order_id, reason="payment deadline passed")
    )
    # then (only now) the stock is released, and the saga ends as expired
    assert actions == [
        CancelTimer(CANCEL_RETRY),
        IssueCommand(
            "inventory.release_stock",
            {"item_id": str(event.item_id), "order_id": str(event.order_id)},
            key="release",
        ),
        Complete("expired"),
    ]
    assert state.stage == "done"


def test_a_payment_the_saga_sees_after_the_deadline_keeps_the_reservation() -> None:
    # given the deadline passed before the (already committed) payment reached the saga
    event, state = deadline_passed()
    # when the payment arrives (the order refuses the saga's cancel: already_paid)
    state, actions = OrderFulfilment.react(state, OrderPaid(order_id=event.order_id))
    # then the saga completes as paid, with no release of the paid order's stock
    assert actions == [CancelTimer(CANCEL_RETRY), Complete("paid")]
    assert state.stage == "done"
    # and the deadline firing again changes nothing
    assert OrderFulfilment.on_timer(state, PAYMENT_DEADLINE) == (state, [])


def test_a_deadline_never_releases_stock_whatever_came_before() -> None:
    # given any stage of the saga
    event, awaiting = placed()
    _, cancelling = deadline_passed()
    done, _ = OrderFulfilment.react(awaiting, OrderPaid(order_id=event.order_id))
    for state in (OrderFulfilment.initial_state(), awaiting, cancelling, done):
        # when the deadline fires
        _, actions = OrderFulfilment.on_timer(state, PAYMENT_DEADLINE)
        # then no command releases stock: that waits for the order's order_cancelled
        assert not [a for a in actions if isinstance(a, IssueCommand)
                    and a.command_type == "inventory.release_stock"]


def test_a_customer_cancellation_releases_the_stock() -> None:
    event, state = placed()
    state, actions = OrderFulfilment.react(
        state, OrderCancelled(order_id=event.order_id, reason="changed my mind")
    )
    assert actions == [
        CancelTimer(PAYMENT_DEADLINE),
        IssueCommand(
            "inventory.release_stock",
            {"item_id": str(event.item_id), "order_id": str(event.order_id)},
            key="release",
        ),
        Complete("cancelled"),
    ]
    assert state.stage == "done"


def test_events_out_of_place_change_nothing() -> None:
    event, state = placed()
    again, actions = OrderFulfilment.react(state, event)  # the start event once more
    assert (again, actions) == (state, [])
    fresh = OrderFulfilment.initial_state()
    assert OrderFulfilment.react(fresh, OrderPaid(order_id=event.order_id)) == (fresh, [])
    assert OrderFulfilment.on_timer(fresh, PAYMENT_DEADLINE) == (fresh, [])


def order_history(*events: BaseModel) -> OrderState:
    state = Order.initial_state()
    for event in events:
        state = Order.evolve(state, event)
    return state


def test_a_paid_order_refuses_to_be_cancelled() -> None:
    # given a placed and paid order
    order_id, item_id = uuid4(), uuid4()
    state = order_history(OrderPlaced(order_id=order_id, item_id=item_id, quantity=2),
                          OrderPaid(order_id=order_id))
    # when the saga (or anyone) asks to cancel it
    # then the order refuses, with a stable code
    with pytest.raises(DomainRejection) as refused:
        Order.decide(CancelOrder(order_id=order_id, reason="payment deadline passed"), state)
    assert refused.value.code == "already_paid"


def test_an_unpaid_order_is_cancelled_and_a_later_payment_refused() -> None:
    # given a placed order, not paid
    order_id = uuid4()
    state = order_history(OrderPlaced(order_id=order_id, item_id=uuid4(), quantity=2))
    # when it is cancelled
    events = Order.decide(CancelOrder(order_id=order_id, reason="deadline"), state)
    # then it records the cancellation, and refuses a payment after it
    assert events == [OrderCancelled(order_id=order_id, reason="deadline")]
    with pytest.raises(DomainRejection) as refused:
        Order.decide(ConfirmPayment(order_id=order_id), order_history(
            OrderPlaced(order_id=order_id, item_id=uuid4(), quantity=2), *events))
    assert refused.value.code == "order_cancelled"


def test_instances_are_named_by_order() -> None:
    event = OrderPaid(order_id=uuid4())
    assert OrderFulfilment.instance_of(event) == str(event.order_id)


def test_saga_command_ids_are_stable_per_step() -> None:
    tenant = uuid4()
    first = saga_command_id("orders.fulfilment", tenant, "o-1", "reserve")
    assert first == saga_command_id("orders.fulfilment", tenant, "o-1", "reserve")
    assert first != saga_command_id("orders.fulfilment", tenant, "o-1", "release")
    assert first != saga_command_id("orders.fulfilment", uuid4(), "o-1", "reserve")


class _Nothing(BaseModel):
    pass


def test_the_saga_registry_refuses_duplicates_bad_names_and_sagas_nothing_starts() -> None:
    registry = SagaRegistry([OrderFulfilment])
    with pytest.raises(RegistryError, match="twice"):
        registry.add(OrderFulfilment)

    class Nameless(Saga[_Nothing]):
        name = "Not A Name"
        state_model = _Nothing
        starts_on = frozenset({"x.y"})

    with pytest.raises(RegistryError, match="saga name"):
        registry.add(Nameless)

    class Unstarted(Saga[_Nothing]):
        name = "tests.unstarted"
        state_model = _Nothing
        starts_on = frozenset()

    with pytest.raises(RegistryError, match="starts it"):
        registry.add(Unstarted)
    with pytest.raises(RegistryError, match="no saga named"):
        registry.get("tests.missing")


def test_an_unanswered_cancel_is_asked_again_and_then_left_for_someone_to_look_at() -> None:
    # given the deadline passed and the cancel command got no answer (it failed)
    event, state = deadline_passed()
    keys = ["cancel"]
    # when the retry timer fires, again and again
    for _ in range(CANCEL_ATTEMPTS - 1):
        state, actions = OrderFulfilment.on_timer(state, CANCEL_RETRY)
        (cancel, timer) = actions
        assert isinstance(cancel, IssueCommand)
        assert cancel.command_type == "orders.cancel_order"
        keys.append(cancel.key)
        assert timer == StartTimer(CANCEL_RETRY, timedelta(minutes=1))
    # then each attempt is a step of its own (a new command id), and after the last one
    # the saga gives up without releasing the stock
    assert keys == ["cancel", *(f"cancel-{n}" for n in range(2, CANCEL_ATTEMPTS + 1))]
    state, actions = OrderFulfilment.on_timer(state, CANCEL_RETRY)
    assert actions == [Complete("cancel_unanswered")]
    assert state.stage == "done"
    # and an answer that comes after that changes nothing
    assert OrderFulfilment.react(
        state, OrderCancelled(order_id=event.order_id, reason="late")) == (state, [])


def test_the_retry_timer_does_nothing_outside_the_cancelling_stage() -> None:
    _, awaiting = placed()
    assert OrderFulfilment.on_timer(awaiting, CANCEL_RETRY) == (awaiting, [])
