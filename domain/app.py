"""The application's registry: every slice, composed and checked once at import."""

from __future__ import annotations

from domain import inventory
from domain.registry import Registry

registry = Registry()
registry.include(inventory.registry)
registry.validate()
