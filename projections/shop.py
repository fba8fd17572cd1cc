"""The example shop's application: its slices (each a package under domain/ with its registry
and sagas) and its projections, composed once. pyproject.toml names it: `[tool.intent] app`.
`intent new slice` and `intent new projection` add to the two lists below."""

from __future__ import annotations

from domain import inventory, orders, tenancy
from projections.application import Application
from projections.inventory import STOCK_LEVELS
from projections.orders import ORDER_SUMMARIES
from projections.tenancy import MEMBERSHIPS

application = Application.compose(
    "shop",
    slices=[inventory, orders, tenancy],
    projections=[STOCK_LEVELS, ORDER_SUMMARIES, MEMBERSHIPS],
)
registry = application.registry
sagas = application.sagas
catalog = application.catalog
