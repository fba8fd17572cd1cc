"""What `intent bench append` found, and its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tools.bench.append.plan import Plan, Target
from tools.bench.append.raw import RAW_TABLE
from tools.bench.broadcast import Drained
from tools.bench.stats import Series, median, percentile, report_header


@dataclass
class Latencies:
    """One side's time per statement (per append, per load), ms, over every timed round."""

    samples: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": len(self.samples),
            "p50_ms": round(self.p50, 4),
            "p99_ms": round(self.p99, 4),
            "max_ms": round(max(self.samples, default=0.0), 4),
        }


@dataclass
class Drains:
    """The relay's catch-up after each round's Intent side."""

    rounds: list[Drained] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        seconds = [d.seconds for d in self.rounds]
        return {
            "per_round_s": [round(s, 4) for s in seconds],
            "median_s": round(median(seconds), 4) if seconds else None,
            "max_s": round(max(seconds), 4) if seconds else None,
            "events_waiting_per_round": [d.waiting for d in self.rounds],
            "timed_out": sum(d.timed_out for d in self.rounds),
        }


@dataclass
class Workload:
    """One workload's paired rounds: Intent and RAW back to back, a ratio per round."""

    key: str
    title: str
    what: str  # how each side is measured, exactly
    unit: str  # "events/s" (W1-W4) or "ms" (W5, W5p)
    intent: Series
    raw: Series
    ratios: list[float]  # per round
    ratio_is: str
    target: Target
    latency: dict[str, Latencies]  # "intent", "raw"
    drains: Drains | None  # None: the trigger broadcasts (nothing lags), or nothing appended
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios."""
        return median(self.ratios)

    @property
    def judged(self) -> float:
        """What the target is judged on: the ratio, or (W5) Intent's median time."""
        return self.ratio if self.target.kind == "min_ratio" else self.intent.median

    @property
    def met(self) -> bool:
        if self.target.kind == "min_ratio":
            return self.judged >= self.target.value
        return self.judged <= self.target.value

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "what": self.what,
            "unit": self.unit,
            **self.sizes,
            "intent": self.intent.as_json(),
            "raw": self.raw.as_json(),
            "ratio": {
                "per_round": [round(r, 4) for r in self.ratios],
                "median": round(self.ratio, 4),
                "is": self.ratio_is,
            },
            "latency_ms": {side: lat.as_json() for side, lat in self.latency.items()},
            "relay_drain": self.drains.as_json() if self.drains is not None else None,
            "target": {
                **self.target.as_json(),
                "judged_on": "ratio.median" if self.target.kind == "min_ratio"
                else "intent.median",
                "value": round(self.judged, 4),
                "met": self.met,
            },
        }


def _method(plan: Plan) -> str:
    return (
        f"{plan.rounds} rounds per workload after one untimed warm-up round; every round "
        "runs the Intent side and the RAW side back to back, Intent first in even rounds "
        "and RAW first in odd ones, each on inputs made for that round before either is "
        "timed (events decided from Command envelopes by domain.decider.decide; RAW rows "
        "are the same events' facts, JSON serialised). A round's ratio is of the two "
        "sides' figures in that round; the workload's ratio is the median of the rounds'. "
        "Latency is per statement (an append, a load), every timed round's together. Both "
        f"sides share one psycopg AsyncConnectionPool of {plan.writers} autocommit "
        "connections (pump.store.connections.open_pool); RAW statements are prepared "
        f"(prepare=True). RAW rows go to {RAW_TABLE}, dropped at the end. gc.collect() "
        "runs before each side's timed part."
    )


@dataclass
class Results:
    plan: Plan
    workloads: list[Workload]
    broadcast: dict[str, Any]
    json_sizes: dict[str, float]
    build: dict[str, Any]
    server: dict[str, Any]
    started_at: datetime
    finished_at: datetime

    @property
    def all_met(self) -> bool:
        return all(w.met for w in self.workloads)

    def workload(self, key: str) -> Workload:
        return next(w for w in self.workloads if w.key == key)

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            **report_header(
                "append", self.started_at, self.finished_at, self.plan.as_json(),
                {**database, **self.server}, _method(self.plan),
            ),
            "broadcast": self.broadcast,
            "json_bytes": {k: round(v, 1) for k, v in self.json_sizes.items()},
            "streams_built": self.build,
            "workloads": {w.key: w.as_json() for w in self.workloads},
            "targets": [
                {"workload": w.key, "title": w.title, "target": w.target.text,
                 "value": round(w.judged, 4), "met": w.met}
                for w in self.workloads
            ],
            "targets_met": self.all_met,
        }
