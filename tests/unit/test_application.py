"""Composing an application from slices: each slice's registry is included and its SAGAS
added, a type declared by two slices is refused by name, and a registry of one's own may
stand beside the slices (or alone)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from domain import inventory, orders
from domain.errors import RegistryError
from projections.application import Application
from projections.inventory import STOCK_LEVELS
from tests.apps import tally


def test_slices_bring_their_registries_and_sagas() -> None:
    app = Application.compose("two", slices=[inventory, orders], projections=[STOCK_LEVELS])
    assert app.registry.aggregate_type("inventory.item") is inventory.Item
    assert app.registry.aggregate_type("orders.order") is orders.Order
    assert [saga.name for saga in app.sagas] == ["orders.fulfilment"]
    assert [projection.name for projection in app.catalog] == ["stock_levels"]


def test_a_type_two_slices_declare_is_refused_by_name() -> None:
    with pytest.raises(RegistryError, match=r"declared twice: event type inventory\.item_regi"):
        Application.compose("twice", slices=[inventory, inventory])


def test_a_registry_of_ones_own_composes_with_slices_or_alone() -> None:
    both = Application.compose("both", tally.registry, slices=[inventory],
                               sagas=[tally.Closer])
    assert {"tally.add", "inventory.register_item"} <= both.registry.command_types().keys()
    assert [saga.name for saga in both.sagas] == ["tally.closer"]
    alone = Application.compose("alone", tally.registry)
    assert alone.registry is tally.registry


def test_a_slice_without_sagas_needs_no_sagas_attribute() -> None:
    bare = SimpleNamespace(registry=inventory.registry)
    assert list(Application.compose("bare", slices=[bare]).sagas) == []


def test_an_application_of_nothing_is_refused() -> None:
    with pytest.raises(TypeError, match="needs slices, a registry, or both"):
        Application.compose("empty")
