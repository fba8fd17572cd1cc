from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from domain.errors import DomainRejection, Forbidden, InvalidCommand
from domain.inventory import Item, ItemState
from domain.inventory.commands import ReceiveStock, RegisterItem, ReleaseStock, ReserveStock
from domain.inventory.events import (
    ItemRegistered,
    StockReceived,
    StockReserved,
    stock_received_v1_to_v2,
)
from domain.testing import scenarios
from projections.shop import registry
from tests.support.builders import StockItem


def rejection(item: StockItem, command_type: str, **payload: Any) -> DomainRejection:
    with pytest.raises(DomainRejection) as caught:
        item.send(command_type, **payload)
    return caught.value


def test_a_registered_item_starts_with_nothing_on_hand() -> None:
    item = StockItem().registered()
    assert item.state == ItemState(registered=True, sku="SKU-1", name="Widget")
    assert item.loaded.version == 1


def test_received_stock_adds_to_what_is_on_hand() -> None:
    item = StockItem().registered(on_hand=5)
    item.send("receive_stock", quantity=7)
    assert (item.state.on_hand, item.state.available) == (12, 12)


# Decisions, given/when/then with the slice author's kit (domain/testing.py).
given = scenarios(registry)
ITEM, ORDER, OTHER = UUID(int=1), UUID(int=2), UUID(int=3)
REGISTERED = ItemRegistered(item_id=ITEM, sku="SKU-1", name="Widget")


@pytest.mark.parametrize(
    "command",
    [
        ReceiveStock(item_id=ITEM, quantity=1),
        ReserveStock(item_id=ITEM, order_id=ORDER, quantity=1),
        ReleaseStock(item_id=ITEM, order_id=ORDER),
    ],
    ids=["receive", "reserve", "release"],
)
def test_nothing_happens_to_an_item_before_it_is_registered(command: BaseModel) -> None:
    given(Item, aggregate_id=ITEM).when(command).then_rejected("item_not_registered")


def test_an_item_is_registered_only_once() -> None:
    given(Item, REGISTERED, aggregate_id=ITEM).when(
        RegisterItem(item_id=ITEM, sku="SKU-2", name="Other")).then_rejected("already_registered")


def test_a_reservation_holds_stock_back_from_later_reservations() -> None:
    held = given(
        Item, REGISTERED, StockReceived(item_id=ITEM, quantity=10),
        StockReserved(item_id=ITEM, order_id=ORDER, quantity=6), aggregate_id=ITEM)
    assert (held.state.on_hand, held.state.available) == (10, 4)
    refused = held.when(
        ReserveStock(item_id=ITEM, order_id=OTHER, quantity=5)).then_rejected("insufficient_stock")
    assert refused.details == {"requested": 5, "available": 4}


def test_all_that_is_available_can_be_reserved() -> None:
    item = StockItem().registered(on_hand=3)
    item.send("reserve_stock", order_id=uuid4(), quantity=3)
    assert item.state.available == 0


def test_reserving_again_for_the_same_order_records_nothing_new() -> None:
    item = StockItem().registered(on_hand=10)
    order_id = uuid4()
    item.send("reserve_stock", order_id=order_id, quantity=4)
    assert item.send("reserve_stock", order_id=order_id, quantity=4) == []
    assert item.state.available == 6


def test_reserving_a_different_quantity_for_the_same_order_is_a_conflict() -> None:
    item = StockItem().registered(on_hand=10)
    order_id = uuid4()
    item.send("reserve_stock", order_id=order_id, quantity=4)
    refused = rejection(item, "reserve_stock", order_id=order_id, quantity=5)
    assert refused.code == "reservation_conflict"


def test_releasing_gives_the_reserved_stock_back() -> None:
    item = StockItem().registered(on_hand=10)
    order_id = uuid4()
    item.send("reserve_stock", order_id=order_id, quantity=4)
    [released] = item.send("release_stock", order_id=order_id)
    assert released.payload["quantity"] == 4
    assert item.state.available == 10
    assert item.state.reservations == {}


def test_releasing_an_unknown_reservation_is_refused() -> None:
    item = StockItem().registered(on_hand=10)
    order_id = uuid4()
    assert rejection(item, "release_stock", order_id=order_id).code == "unknown_reservation"
    item.send("reserve_stock", order_id=order_id, quantity=1)
    item.send("release_stock", order_id=order_id)
    assert rejection(item, "release_stock", order_id=order_id).code == "unknown_reservation"


@pytest.mark.parametrize("quantity", [0, -1])
def test_quantities_must_be_positive(quantity: int) -> None:
    item = StockItem().registered()
    with pytest.raises(InvalidCommand, match="quantity"):
        item.send("receive_stock", quantity=quantity)


def test_payloads_with_unknown_fields_are_refused() -> None:
    item = StockItem().registered()
    with pytest.raises(InvalidCommand, match="colour"):
        item.send("receive_stock", quantity=1, colour="red")


@pytest.mark.parametrize(
    "command_type", sorted(n for n in registry.command_types() if n.startswith("inventory.")))
def test_signed_in_users_and_the_service_may_send_inventory_commands(command_type: str) -> None:
    registry.check_role(command_type, "authenticated")
    registry.check_role(command_type, "service_role")
    with pytest.raises(Forbidden):
        registry.check_role(command_type, "anon")


def test_the_slice_is_part_of_the_application_registry() -> None:
    assert registry.aggregate_type("inventory.item") is Item
    inventory_commands = {n for n in registry.command_types() if n.startswith("inventory.")}
    assert inventory_commands == {
        "inventory.register_item",
        "inventory.receive_stock",
        "inventory.reserve_stock",
        "inventory.release_stock",
    }
    assert registry.event_types()["inventory.stock_received"].version == 2


def test_stock_received_v1_named_the_quantity_qty() -> None:
    item_id = str(uuid4())
    assert stock_received_v1_to_v2({"item_id": item_id, "qty": 3}) == {
        "item_id": item_id,
        "quantity": 3,
    }
