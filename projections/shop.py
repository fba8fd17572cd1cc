"""The example shop's application: its slices' registry and sagas (domain.shop) and its
projections, composed once. pyproject.toml names it: `[tool.intent] app`."""

from __future__ import annotations

from domain.shop import registry, sagas
from projections.application import Application
from projections.inventory import STOCK_LEVELS
from projections.orders import ORDER_SUMMARIES

application = Application.compose(
    "shop", registry, sagas=sagas, projections=[STOCK_LEVELS, ORDER_SUMMARIES]
)
catalog = application.catalog
