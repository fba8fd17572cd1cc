"""What `intent bench commands` found, per side and against its targets, and its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from tools.bench.commands.function_hop import HopResults
from tools.bench.commands.plan import (
    DIRECT,
    PROCESS_MODEL,
    TARGET_P50_MS,
    TARGET_P99_MS,
    TARGET_RATE,
    TARGET_RATIO,
    TARGET_TRACING_RATIO,
    TEMPORAL,
    TRACED,
    Plan,
    Side,
)
from tools.bench.stats import Comparison, Series, machine, median, percentile


@dataclass
class SideResults:
    side: Side
    rates: list[float] = field(default_factory=list)  # commands/s per round
    submit_rates: list[float] = field(default_factory=list)
    drain_rates: list[float] = field(default_factory=list)  # backlog drain, per round
    # CPU of this process (pump, worker, exporter thread) per drained command, us, per round
    drain_cpu_us: list[float] = field(default_factory=list)
    load_db_p50: list[float] = field(default_factory=list)  # ms, under throughput load
    load_db_p99: list[float] = field(default_factory=list)
    latencies: list[list[float]] = field(default_factory=list)  # ms, low load, per round
    batches: list[int] = field(default_factory=list)
    rejected: int = 0

    @property
    def rate(self) -> Series:
        return Series(self.side.name, f"{self.side.name}: commands/s", "commands/s", self.rates)

    @property
    def drain(self) -> Series:
        return Series(
            self.side.name, f"{self.side.name}: backlog drained, commands/s", "commands/s",
            self.drain_rates,
        )

    @property
    def all_latencies(self) -> list[float]:
        return [v for r in self.latencies for v in r]

    @property
    def p50(self) -> float:
        return percentile(self.all_latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.all_latencies, 99)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": "temporal" if self.side.temporal else "direct",
            "batch_processor": "per-stream loads and appends" if self.side.per_stream
            else "bulk loads and appends",
            "temporal_eager": self.side.eager if self.side.temporal else None,
            "tracing": self.side.tracing,
            "throughput": self.rate.as_json(),
            "submit_rate_per_round": [round(v, 1) for v in self.submit_rates],
            "backlog_drain": self.drain.as_json(),
            "drain_process_cpu_us_per_command": [round(v, 1) for v in self.drain_cpu_us],
            "batches_per_round": self.batches,
            "latency_under_load_db_ms": {
                "what": "intent.commands updated_at - created_at (transaction start times)",
                "p50_per_round": [round(v, 2) for v in self.load_db_p50],
                "p99_per_round": [round(v, 2) for v in self.load_db_p99],
                "p50_median": round(median(self.load_db_p50), 2),
                "p99_median": round(median(self.load_db_p99), 2),
            },
            "low_load_latency_ms": {
                "what": "perf_counter before submit to the command seen processed",
                "samples": len(self.all_latencies),
                "p50": round(self.p50, 2),
                "p99": round(self.p99, 2),
                "max": round(max(self.all_latencies), 2),
                "p50_per_round": [round(percentile(r, 50), 2) for r in self.latencies],
                "p99_per_round": [round(percentile(r, 99), 2) for r in self.latencies],
            },
            "rejected_or_failed": self.rejected,
        }


@dataclass
class Target:
    name: str
    value: float
    limit: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "value": round(self.value, 3),
            "limit": self.limit,
            "at_least" if self.at_least else "at_most": True,
            "met": self.met,
        }


@dataclass
class Results:
    plan: Plan
    sides: dict[str, SideResults]
    server: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    tenants: list[UUID]
    clients: int = 1
    hop: HopResults | None = None
    spans_recorded: int = 0

    @property
    def direct(self) -> SideResults:
        return self.sides[DIRECT.name]

    @property
    def temporal(self) -> SideResults:
        return self.sides[TEMPORAL.name]

    @property
    def comparison(self) -> Comparison:
        return Comparison(self.temporal.rate, self.direct.rate, TARGET_RATIO)

    @property
    def drain_comparison(self) -> Comparison:
        return Comparison(self.temporal.drain, self.direct.drain, TARGET_RATIO)

    @property
    def traced(self) -> SideResults | None:
        return self.sides.get(TRACED.name)

    def tracing_comparisons(self) -> tuple[Comparison, Comparison] | None:
        """Traced Temporal beside untraced Temporal: (live, drain)."""
        traced = self.traced
        if traced is None:
            return None
        return (Comparison(traced.rate, self.temporal.rate, TARGET_TRACING_RATIO),
                Comparison(traced.drain, self.temporal.drain, TARGET_TRACING_RATIO))

    @property
    def targets(self) -> list[Target]:
        return [
            Target("temporal commands/s, live submitters", self.temporal.rate.median,
                   TARGET_RATE, True),
            Target("temporal commands/s, backlog drain", self.temporal.drain.median,
                   TARGET_RATE, True),
            Target("temporal / direct, live submitters", self.comparison.ratio, TARGET_RATIO,
                   True),
            Target("temporal / direct, backlog drain", self.drain_comparison.ratio,
                   TARGET_RATIO, True),
            Target("temporal low-load p50 ms", self.temporal.p50, TARGET_P50_MS, False),
            Target("temporal low-load p99 ms", self.temporal.p99, TARGET_P99_MS, False),
            *self._tracing_targets(),
        ]

    def _tracing_targets(self) -> list[Target]:
        compared = self.tracing_comparisons()
        if compared is None:
            return []
        live, drain = compared
        return [
            Target("traced / untraced temporal, live submitters", live.ratio,
                   TARGET_TRACING_RATIO, True),
            Target("traced / untraced temporal, backlog drain", drain.ratio,
                   TARGET_TRACING_RATIO, True),
        ]

    @property
    def all_met(self) -> bool:
        return all(t.met for t in self.targets)

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            "benchmark": "commands",
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 2),
            "plan": self.plan.as_json(),
            "processes": PROCESS_MODEL,
            "client_processes": self.clients,
            "clients": (
                f"{self.plan.submitters} concurrent callers in {self.clients} client "
                "process(es) of their own (spawned once, before the rounds)"
                if self.clients
                else f"{self.plan.submitters} concurrent callers in the benchmark's process"
            ),
            "database": {**database, **self.server},
            "tenants": [str(t) for t in self.tenants],
            "machine": machine(),
            "method": (
                "Each round runs every side's throughput load, then every side's low-load "
                "run, in an order rotated every round, after an untimed warm-up of each. "
                "Commands are submitted through public.submit_command as authenticated "
                "users of two tenants (transaction, set local role, request.jwt.claims). "
                "Throughput = commands / (last seen processed - first submit). Backlog "
                "drain = commands submitted with no pump running / (last seen processed - "
                "pump start). Low-load "
                "percentiles pool every round's samples. Figures are medians over rounds."
            ),
            "sides": {name: s.as_json() for name, s in self.sides.items()},
            "temporal_vs_direct": {
                "ratio": round(self.comparison.ratio, 4),
                "paired_ratio_median": round(self.comparison.paired_ratio(self.direct.rate), 4),
                "backlog_drain_ratio": round(self.drain_comparison.ratio, 4),
                "backlog_drain_paired_ratio_median": round(
                    self.drain_comparison.paired_ratio(self.direct.drain), 4
                ),
            },
            "targets": [t.as_json() for t in self.targets],
            "targets_met": self.all_met,
            "function_hop": self.hop.as_json() if self.hop is not None else None,
            "tracing_overhead": self._tracing_json(),
        }

    def _tracing_json(self) -> dict[str, Any] | None:
        compared = self.tracing_comparisons()
        traced = self.traced
        if compared is None or traced is None:
            return None
        live, drain = compared
        return {
            "what": "the Temporal side with tracing on (OpenTelemetry SDK, BatchSpanProcessor "
                    "to an in-memory exporter, Temporal's TracingInterceptor) beside it off, "
                    "in the same rounds",
            "live_ratio": round(live.ratio, 4),
            "live_paired_ratio_median": round(live.paired_ratio(self.temporal.rate), 4),
            "drain_ratio": round(drain.ratio, 4),
            "drain_paired_ratio_median": round(drain.paired_ratio(self.temporal.drain), 4),
            "low_load_p50_ms_added": round(traced.p50 - self.temporal.p50, 2),
            "drain_process_cpu_us_per_command": {
                "untraced": round(median(self.temporal.drain_cpu_us), 1),
                "traced": round(median(traced.drain_cpu_us), 1),
            },
            "spans_recorded": self.spans_recorded,
        }
