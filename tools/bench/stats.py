"""Summaries of per-round figures: medians, spread, and Intent beside its baseline."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> float:
    """Half the interquartile range as a fraction of the median (0.05: about ±5 %)."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    mid = median(values)
    return float((q3 - q1) / 2 / mid) if mid else 0.0


@dataclass
class Series:
    """One measured thing, one figure per round."""

    label: str
    description: str
    unit: str
    per_round: list[float]

    @property
    def median(self) -> float:
        return median(self.per_round)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "description": self.description,
            "unit": self.unit,
            "per_round": [round(v, 4) for v in self.per_round],
            "median": round(self.median, 4),
            "min": round(min(self.per_round), 4),
            "max": round(max(self.per_round), 4),
            "spread": round(spread(self.per_round), 4),
        }


@dataclass
class Comparison:
    """Intent beside baselines measured in the same rounds, in rotating order. The target
    is judged against `baseline`; `also` are further baselines, shown for context."""

    intent: Series
    baseline: Series
    min_ratio: float
    also: list[Series] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Median Intent rate over median baseline rate."""
        return self.intent.median / self.baseline.median

    def ratio_to(self, other: Series) -> float:
        return self.intent.median / other.median

    def paired_ratio(self, other: Series) -> float:
        """The median of the per-round ratios (each round's sides ran back to back)."""
        pairs = zip(self.intent.per_round, other.per_round, strict=True)
        return median([a / b for a, b in pairs])

    @property
    def met(self) -> bool:
        return self.ratio >= self.min_ratio


def verdict(met: bool) -> str:
    """A target's outcome, for the tables."""
    return "[green]met[/green]" if met else "[red]MISSED[/red]"


def server_line(server: dict[str, Any], *settings: str) -> str:
    """PostgreSQL's version and the durability settings a figure depends on."""
    values = server.get("settings", {})
    names = settings or ("fsync", "synchronous_commit")
    shown = ", ".join(f"{name}={values.get(name)}" for name in names)
    return f"PostgreSQL {server.get('server_version')}: {shown}"


def outcome_line(all_met: bool) -> str:
    return ("[green]all targets met[/green]" if all_met
            else "[red]some targets missed[/red] (see the table)")


def json_name(benchmark: str, now: datetime | None = None) -> str:
    """bench-results/<benchmark>-<UTC time>.json's file name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{benchmark}-{stamp}.json"


def report_header(
    benchmark: str, started: datetime, finished: datetime, plan: dict[str, Any],
    database: dict[str, Any], method: str | None,
) -> dict[str, Any]:
    """What every benchmark's JSON starts with: when, what plan, where, on what machine."""
    import os
    import platform
    import sys

    return {
        "benchmark": benchmark,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 2),
        "plan": plan,
        "database": database,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "platform": platform.platform()},
        "method": (method or "").strip(),
    }
