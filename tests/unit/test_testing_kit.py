"""The slice author's given/when/then kit (domain/testing.py), for aggregates and sagas: it
passes what the pipeline would do, and names each mistake a test can make instead of passing
it by."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from domain.inventory import Item
from domain.inventory.commands import ReceiveStock, RegisterItem, ReserveStock
from domain.inventory.events import ItemRegistered, StockReceived, StockReserved
from domain.orders import FulfilmentState, OrderCancelled, OrderFulfilment, OrderPaid, OrderPlaced
from domain.orders.fulfilment import PAYMENT_DEADLINE
from domain.saga import Action, IssueCommand, StartTimer
from domain.testing import ScenarioError, Stored, saga_scenarios, scenarios
from projections.shop import registry

given = scenarios(registry)
ITEM, ORDER = UUID(int=1), UUID(int=2)
REGISTERED = ItemRegistered(item_id=ITEM, sku="SKU-1", name="Bolt")


class Unregistered(BaseModel):
    item_id: UUID


def test_a_decision_is_checked_against_the_events_and_returns_the_state_after() -> None:
    after = (
        given(Item, REGISTERED, StockReceived(item_id=ITEM, quantity=5), aggregate_id=ITEM)
        .when(ReserveStock(item_id=ITEM, order_id=ORDER, quantity=2))
        .then(StockReserved(item_id=ITEM, order_id=ORDER, quantity=2))
    )
    assert (after.version, after.state.on_hand, after.state.available) == (3, 5, 3)


def test_different_events_than_expected_fail_naming_both() -> None:
    outcome = given(Item, REGISTERED, aggregate_id=ITEM).when(
        ReceiveStock(item_id=ITEM, quantity=5))
    with pytest.raises(AssertionError, match=r"expected \[.*quantity=4.*\]\n +got \[.*quantity=5"):
        outcome.then(StockReceived(item_id=ITEM, quantity=4))


def test_a_rejection_is_expected_by_its_code() -> None:
    rejection = given(Item, aggregate_id=ITEM).when(
        ReceiveStock(item_id=ITEM, quantity=1)).then_rejected("item_not_registered")
    assert rejection.reason == "the item has not been registered"


def test_a_rejection_with_another_code_or_none_fails() -> None:
    refused = given(Item, aggregate_id=ITEM).when(ReceiveStock(item_id=ITEM, quantity=1))
    with pytest.raises(AssertionError, match="expected rejection 'insufficient_stock', got "
                                             "'item_not_registered'"):
        refused.then_rejected("insufficient_stock")
    accepted = given(Item, aggregate_id=ITEM).when(RegisterItem(item_id=ITEM, sku="S", name="N"))
    with pytest.raises(AssertionError, match="but decided"):
        accepted.then_rejected("already_registered")
    with pytest.raises(AssertionError, match="was rejected: item_not_registered"):
        refused.then(StockReceived(item_id=ITEM, quantity=1))


def test_an_older_schema_version_is_given_as_stored_and_upcast() -> None:
    old = Stored("inventory.stock_received", 1, {"item_id": str(ITEM), "qty": 4})
    assert given(Item, REGISTERED, old, aggregate_id=ITEM).state.on_hand == 4


def test_a_given_event_the_registry_does_not_know_is_an_error_of_the_test() -> None:
    with pytest.raises(ScenarioError, match="Unregistered is not a registered event"):
        given(Item, REGISTERED, Unregistered(item_id=ITEM))
    with pytest.raises(ScenarioError, match=r"inventory\.vanished is not a registered type"):
        given(Item, Stored("inventory.vanished", 1, {}))


def test_a_stored_payload_that_fails_its_model_is_an_error_of_the_test() -> None:
    bad = Stored("inventory.stock_received", 2, {"item_id": str(ITEM), "quantity": "lots"})
    with pytest.raises(ScenarioError, match=r"do not fold: .*quantity"):
        given(Item, REGISTERED, bad, aggregate_id=ITEM)


def test_a_version_newer_than_the_code_is_an_error_of_the_test() -> None:
    future = Stored("inventory.stock_received", 3, {"item_id": str(ITEM), "quantity": 1})
    with pytest.raises(ScenarioError, match=r"schema version 3 is outside 1\.\.2"):
        given(Item, REGISTERED, future, aggregate_id=ITEM)


def test_a_command_the_registry_would_refuse_is_an_error_of_the_test() -> None:
    with pytest.raises(ScenarioError, match="Unregistered is not a registered command"):
        given(Item).when(Unregistered(item_id=ITEM))
    with pytest.raises(ScenarioError, match=r"role 'anon' may not send inventory\.receive_stock"):
        given(Item).when(ReceiveStock(item_id=uuid4(), quantity=1), role="anon")
    # A payload that passes its model in Python but not the registry's bounds on the way in.
    with pytest.raises(ScenarioError, match="refuses the command"):
        given(Item, aggregate_id=ITEM).when(ReceiveStock.model_construct(item_id=ITEM,
                                                                         quantity=0))


# -- sagas ---------------------------------------------------------------------------------

saga = saga_scenarios(registry)
PLACED = OrderPlaced(order_id=ORDER, item_id=ITEM, quantity=3)
RESERVE = IssueCommand("inventory.reserve_stock",
                       {"item_id": str(ITEM), "order_id": str(ORDER), "quantity": 3},
                       key="reserve")


def test_a_saga_run_checks_each_steps_actions_and_keeps_its_timers() -> None:
    run = saga(OrderFulfilment, PLACED).then(
        RESERVE, StartTimer(PAYMENT_DEADLINE, timedelta(minutes=15)))
    assert dict(run.timers) == {PAYMENT_DEADLINE: timedelta(minutes=15)}
    expired = run.when_timer(PAYMENT_DEADLINE)
    assert expired.state.stage == "cancelling"
    assert [type(a) for a in expired.actions] == [IssueCommand, StartTimer]
    done = expired.when(OrderCancelled(order_id=ORDER, reason="payment deadline passed"))
    assert done.outcome == "expired"
    assert done.timers == ()


def test_other_actions_than_expected_fail_naming_both() -> None:
    with pytest.raises(AssertionError, match=r"expected \[IssueCommand.*\]\n +got"):
        saga(OrderFulfilment, PLACED).then(RESERVE)


def test_a_timer_that_is_not_running_cannot_fire() -> None:
    paid = saga(OrderFulfilment, PLACED, OrderPaid(order_id=ORDER))
    assert paid.outcome == "paid"
    with pytest.raises(ScenarioError, match="timer 'payment_deadline' is not running"):
        paid.when_timer(PAYMENT_DEADLINE)


def test_a_saga_given_events_it_would_never_see_is_an_error_of_the_test() -> None:
    with pytest.raises(ScenarioError, match=r"is not started by orders\.order_paid"):
        saga(OrderFulfilment, OrderPaid(order_id=ORDER))
    with pytest.raises(ScenarioError, match=r"does not listen to inventory\.item_registered"):
        saga(OrderFulfilment, PLACED, REGISTERED)
    with pytest.raises(ScenarioError, match="belongs to instance"):
        saga(OrderFulfilment, PLACED, OrderPaid(order_id=uuid4()))


class Sloppy(OrderFulfilment):
    """Issues a reservation its command model refuses (a quantity of 0)."""

    @classmethod
    def react(cls, state: FulfilmentState, event: BaseModel
              ) -> tuple[FulfilmentState, Sequence[Action]]:
        new, _ = super().react(state, event)
        return new, [IssueCommand("inventory.reserve_stock",
                                  {"item_id": str(ITEM), "order_id": str(ORDER), "quantity": 0},
                                  key="reserve")]


def test_a_saga_issuing_a_command_the_registry_refuses_is_caught() -> None:
    with pytest.raises(ScenarioError, match="payload its model refuses"):
        saga(Sloppy, PLACED)
