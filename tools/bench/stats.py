"""Summaries of per-round figures (medians, percentiles, spread, Intent beside its
baseline) and what every benchmark's report shares (verdicts, the JSON's header and name)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; 0 of no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0.5, 0.99) of a non-empty list: always one of the values."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


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


def outcome_line(all_met: bool, see: str = "the table") -> str:
    return ("[green]all targets met[/green]" if all_met
            else f"[red]some targets missed[/red] (see {see})")


def spread_text(series: Series) -> str:
    """A series' spread, for the tables: ± half the interquartile range, in per cent."""
    return f"[dim]±{spread(series.per_round) * 100:.0f}%[/dim]"


def rate_cell(series: Series) -> str:
    """A rate's median and spread, for the tables."""
    return f"{series.median:,.0f} {spread_text(series)}"


def json_name(benchmark: str, now: datetime | None = None) -> str:
    """bench-results/<benchmark>-<UTC time>.json's file name."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{benchmark}-{stamp}.json"


def dumps(report: dict[str, Any]) -> str:
    """A report as the JSON file holds it."""
    return json.dumps(report, indent=2) + "\n"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0],
            "platform": platform.platform()}


def report_header(
    benchmark: str, started: datetime, finished: datetime, plan: dict[str, Any],
    database: dict[str, Any], method: str | None,
) -> dict[str, Any]:
    """What every benchmark's JSON starts with: when, what plan, where, on what machine."""
    return {
        "benchmark": benchmark,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 2),
        "plan": plan,
        "database": database,
        "machine": machine(),
        "method": (method or "").strip(),
    }
