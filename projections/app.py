"""The application's projections, checked against the domain registry at import."""

from __future__ import annotations

from domain.app import registry
from projections.inventory import STOCK_LEVELS
from projections.metadata import Catalog
from projections.orders import ORDER_SUMMARIES

catalog = Catalog(
    [STOCK_LEVELS, ORDER_SUMMARIES],
    event_types=registry.event_types(),
    models={name: kind.payload_model for name, kind in registry.event_types().items()},
)
