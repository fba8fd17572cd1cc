"""The fulfilment saga as a pure definition, and the saga registry's rules."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest
from pydantic import BaseModel

from domain.errors import RegistryError
from domain.orders import FulfilmentState, OrderCancelled, OrderFulfilment, OrderPaid, OrderPlaced
from domain.orders.fulfilment import PAYMENT_DEADLINE
from domain.saga import (
    CancelTimer,
    Complete,
    IssueCommand,
    Saga,
    SagaRegistry,
    StartTimer,
    saga_command_id,
)


def placed() -> tuple[OrderPlaced, FulfilmentState]:
    event = OrderPlaced(order_id=uuid4(), item_id=uuid4(), quantity=3)
    state, _ = OrderFulfilment.react(OrderFulfilment.initial_state(), event)
    return event, state


def test_a_placed_order_reserves_its_stock_and_starts_the_payment_deadline() -> None:
    event = OrderPlaced(order_id=uuid4(), item_id=uuid4(), quantity=3)
    state, actions = OrderFulfilment.react(OrderFulfilment.initial_state(), event)
    assert state.stage == "awaiting_payment"
    assert actions == [
        IssueCommand(
            "inventory.reserve_stock",
            {"item_id": str(event.item_id), "order_id": str(event.order_id), "quantity": 3},
            key="reserve",
        ),
        StartTimer(PAYMENT_DEADLINE, timedelta(minutes=15)),
    ]


def test_payment_before_the_deadline_completes_without_compensation() -> None:
    event, state = placed()
    state, actions = OrderFulfilment.react(state, OrderPaid(order_id=event.order_id))
    assert actions == [CancelTimer(PAYMENT_DEADLINE), Complete("paid")]
    assert state.stage == "done"


def test_the_deadline_releases_the_stock_and_cancels_the_order() -> None:
    _, state = placed()
    state, actions = OrderFulfilment.on_timer(state, PAYMENT_DEADLINE)
    assert [a.command_type for a in actions if isinstance(a, IssueCommand)] == [
        "inventory.release_stock", "orders.cancel_order",
    ]
    assert actions[-1] == Complete("expired")
    assert state.stage == "done"


def test_a_customer_cancellation_releases_the_stock() -> None:
    event, state = placed()
    _, actions = OrderFulfilment.react(
        state, OrderCancelled(order_id=event.order_id, reason="changed my mind")
    )
    assert IssueCommand(
        "inventory.release_stock",
        {"item_id": str(event.item_id), "order_id": str(event.order_id)},
        key="release",
    ) in actions
    assert actions[-1] == Complete("cancelled")


def test_events_out_of_place_change_nothing() -> None:
    event, state = placed()
    again, actions = OrderFulfilment.react(state, event)  # the start event once more
    assert (again, actions) == (state, [])
    fresh = OrderFulfilment.initial_state()
    assert OrderFulfilment.react(fresh, OrderPaid(order_id=event.order_id)) == (fresh, [])
    assert OrderFulfilment.on_timer(fresh, PAYMENT_DEADLINE) == (fresh, [])


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
