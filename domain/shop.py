"""The application's registries: every slice, composed and checked once at import."""

from __future__ import annotations

from domain import inventory, orders
from domain.registry import Registry
from domain.saga import SagaRegistry

registry = Registry()
registry.include(inventory.registry)
registry.include(orders.registry)
registry.validate()

sagas = SagaRegistry(orders.SAGAS)
