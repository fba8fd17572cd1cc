"""`intent bench projections`: how fast a projection is rebuilt from the feed, beside a COPY
of the rows it ends up with.

Workload: N stock events of one fresh tenant, over N/10 items (each registered, then nine
receipts of one unit), loaded with COPY into intent.events (as the worker role) in
version-major order: all items' first events, then all their second events, and so on, ten
thousand rows per transaction; then VACUUM ANALYZE (untimed). With at least as many items
as a page holds events (the full run: 10,000 items, pages of 2,000), no page touches a row
twice, so the fold in Python saves nothing: the honest case.

Intent side, per round: `Rebuilder.run` of a copy of the `stock_levels` projection (its own
schema, `intent_bench`) from the feed position just before the events: twin tables, the
catch-up, the swap. Its events/s is N divided by the whole rebuild's time. `stock_levels` is
declared as Rules, so its catch-up folds ranges of 25,000 events in SQL (projections.set_fold).
The same rebuild forced through the Python path (page by page: feed read, upcast, handler,
fold, one MERGE per page, checkpoint), which is what a projection whose handler is code gets,
is run in every round too and reported beside it, not judged; so is the runner's catch-up
(`ProjectionRunner` from a checkpoint just before the events, over an emptied live table:
SQL ranges of 25,000 events, each with its checkpoint), as a new async projection over an
existing store would catch up.

Baseline, per round, same cluster, same pool: COPY of exactly the rows the rebuild produced
(all columns, the guard columns included) into an equivalent table (projections.sql.table_ddl:
same columns, primary key, index, RLS), one transaction; rows/s.

The brief's ratio is the rebuild's events/s over the baseline's rows/s; the table also gives
the time ratio (COPY seconds / rebuild seconds), which is that ratio divided by the events
per row. Sides alternate first and second from round to round, after one untimed warm-up
rebuild (which also yields the rows for the COPY); medians over the rounds. The
order of the four (SQL-path rebuild, COPY, Python-path rebuild, runner catch-up) rotates from
round to round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.inventory import STOCK_LEVELS

# The JSON's `method`: this module's docstring.
METHOD = __doc__

SCHEMA = "intent_bench"
PROJECTION = STOCK_LEVELS.model_copy(
    update={"name": "bench_stock_levels", "schema_name": SCHEMA, "mode": "async",
            "realtime": False}
)
TABLE = PROJECTION.tables[0]
COPY_TABLE = f"{TABLE.name}_copy"
EVENTS_PER_ITEM = 10
LOAD_CHUNK = 10_000

TARGET_EVENTS_PER_SECOND = 20_000.0
TARGET_RATIO = 0.40


@dataclass(frozen=True)
class Plan:
    name: str
    events: int
    rounds: int
    page_size: int = 2000

    @property
    def items(self) -> int:
        return max(1, self.events // EVENTS_PER_ITEM)

    @property
    def total_events(self) -> int:
        return self.items * EVENTS_PER_ITEM

    def with_events(self, events: int | None) -> Plan:
        if events is None:
            return self
        return Plan(self.name, events, self.rounds, self.page_size)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "events": self.total_events, "items": self.items,
                "events_per_item": EVENTS_PER_ITEM, "rounds": self.rounds,
                "page_size": self.page_size}


FULL = Plan("full", events=100_000, rounds=5)
QUICK = Plan("quick", events=5_000, rounds=2)
