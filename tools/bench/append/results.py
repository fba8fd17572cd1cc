"""What `intent bench append` found, and its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.inventory import Item
from tools.bench.append.plan import (
    LOAD_KINDS,
    SNAPSHOT_KINDS,
    TARGET_LOAD_GROWTH,
    Plan,
    load_description,
)
from tools.bench.append.raw_table import RAW_TABLE
from tools.bench.stats import Comparison, Series, report_header


@dataclass
class LoadResults:
    lengths: tuple[int, ...]
    series: dict[str, dict[int, Series]] = field(
        default_factory=lambda: {kind: {} for kind in LOAD_KINDS}
    )
    snapshot_counts: dict[int, int] = field(default_factory=dict)
    replayed: dict[tuple[str, int], int] = field(default_factory=dict)
    loads_per_round: dict[tuple[str, int], int] = field(default_factory=dict)

    def growth(self, kind: str) -> float:
        """Load time of the longest stream over that of the shortest."""
        cases = self.series[kind]
        return cases[max(self.lengths)].median / cases[min(self.lengths)].median

    def ratio_to_baseline(self, kind: str, length: int) -> float:
        return self.series[kind][length].median / self.series["baseline"][length].median

    @property
    def met(self) -> bool:
        return all(self.growth(kind) <= TARGET_LOAD_GROWTH for kind in SNAPSHOT_KINDS)

    def as_json(self) -> dict[str, Any]:
        short, long = min(self.lengths), max(self.lengths)
        return {
            "unit": "ms",
            "stream_lengths": list(self.lengths),
            "how_built": (
                "AggregateRepository.save of the item's events in batches of "
                f"{Item.snapshot_every}, so the repository wrote a snapshot at every "
                f"multiple of {Item.snapshot_every}"
            ),
            "kinds": {kind: load_description(kind, "N") for kind in LOAD_KINDS},
            "snapshots_stored": {str(k): v for k, v in self.snapshot_counts.items()},
            "events_replayed_after_snapshot": {
                f"{kind}_{n}": v for (kind, n), v in self.replayed.items()
            },
            "baseline": (
                "select payload from intent.events where tenant_id, aggregate_type, "
                "aggregate_id = the stream order by version, fetched through the same pool, "
                "then a Python sum of payload['quantity']"
            ),
            "loads_per_round": {f"{k}_{n}": v for (k, n), v in self.loads_per_round.items()},
            "per_round_is": "the mean of loads_per_round loads of the case, back to back",
            "cases": {
                f"{kind}_{length}": self.series[kind][length].as_json()
                for kind in LOAD_KINDS
                for length in self.lengths
            },
            "growth": {
                kind: round(self.growth(kind), 4) for kind in LOAD_KINDS
            },
            "growth_is": f"median load of {long} events / median load of {short} events",
            "growth_with_snapshots": {
                "ratio": round(self.growth("snapshots"), 4),
                "ratio_with_tail": round(self.growth("snapshot_tail"), 4),
                "target_max": TARGET_LOAD_GROWTH,
                "met": self.met,
            },
            "vs_baseline": {
                f"{kind}_{n}": round(self.ratio_to_baseline(kind, n), 4)
                for kind in LOAD_KINDS[:3]
                for n in self.lengths
            },
        }


def _method(writers: int) -> str:
    return (
        "Sections (a)-(c) run the Intent side and two raw baselines once per round, "
        "in an order rotated every round, after one untimed warm-up round of each; "
        "figures are medians over the rounds and ratios are of the medians (paired "
        "per-round ratios are given too). Events are built and validated before the "
        "timed part. The target baseline gets its JSON serialised before the timed "
        "part (the strictest floor); the second baseline passes Python dicts through "
        "psycopg's Jsonb wrapper, so the driver serialises them while timed, as an "
        "application inserting its own JSON would. Each writer appends versions 1, "
        "2, 3, ... of a fresh stream per round. Every side uses one psycopg "
        "AsyncConnectionPool from pump.store.connections.open_pool (autocommit, "
        f"server-side prepared statements), of {writers} connections. "
        "Baseline rows "
        f"go to {RAW_TABLE} (like intent.events including all)."
    )


@dataclass
class Results:
    plan: Plan
    single: Comparison
    concurrent: Comparison
    batch: Comparison
    load: LoadResults
    server: dict[str, Any]
    started_at: datetime
    finished_at: datetime

    @property
    def all_met(self) -> bool:
        return self.single.met and self.concurrent.met and self.batch.met and self.load.met

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        plan = self.plan
        return {
            **report_header(
                "append", self.started_at, self.finished_at, plan.as_json(),
                {**database, **self.server}, _method(plan.writers),
            ),
            "sections": {
                "single_writer": _comparison_json(
                    self.single, "one writer, one event per transaction",
                    {"events_per_round": plan.single_events},
                ),
                "concurrent_writers": _comparison_json(
                    self.concurrent,
                    f"{plan.writers} concurrent writers (asyncio tasks, pool of "
                    f"{plan.writers}), one event per transaction, each on its own stream",
                    {
                        "writers": plan.writers,
                        "events_per_writer_per_round": plan.concurrent_events,
                    },
                ),
                "batch_append": _comparison_json(
                    self.batch,
                    f"{plan.batch_size} events per append vs COPY of "
                    f"{plan.batch_size} rows per transaction",
                    {"batch_size": plan.batch_size, "batches_per_round": plan.batches},
                ),
                "aggregate_load": self.load.as_json(),
            },
            "targets_met": self.all_met,
        }


def _comparison_json(c: Comparison, what: str, sizes: dict[str, int]) -> dict[str, Any]:
    def beside(series: Series) -> dict[str, Any]:
        return {
            **series.as_json(),
            "intent_ratio": round(c.ratio_to(series), 4),
            "paired_ratio_median": round(c.paired_ratio(series), 4),
        }

    return {
        "what": what,
        "unit": "events/s",
        **sizes,
        "intent": c.intent.as_json(),
        "baseline": beside(c.baseline),
        "other_baselines": [beside(other) for other in c.also],
        "ratio": round(c.ratio, 4),
        "ratio_is": (
            "median Intent events/s / median baseline events/s (the target baseline: JSON "
            "pre-serialised, the strictest)"
        ),
        "target": {"min_ratio": c.min_ratio, "met": c.met},
    }
