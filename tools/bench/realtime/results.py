"""What `intent bench realtime` found: a phase per side and fan-out, the targets, the JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tools.bench.realtime.plan import METHOD, TARGET_FANOUT, TARGET_P50_MS, TARGET_P99_MS, Plan
from tools.bench.stats import nearest_rank, report_header


@dataclass
class Phase:
    """One side at one fan-out: latencies in ms of every delivery, and what never came."""

    side: str
    fanout: int
    messages: int
    latencies_ms: list[float]
    missed: int
    duplicates: int
    seconds: float

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    @property
    def p50(self) -> float:
        return nearest_rank(self.latencies_ms, 0.50) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return nearest_rank(self.latencies_ms, 0.99) if self.latencies_ms else float("nan")

    @property
    def deliveries_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "side": self.side, "fanout": self.fanout, "messages": self.messages,
            "delivered": self.delivered, "missed": self.missed, "duplicates": self.duplicates,
            "p50_ms": round(self.p50, 2), "p99_ms": round(self.p99, 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
            "deliveries_per_s": round(self.deliveries_per_second, 1),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Results:
    plan: Plan
    phases: list[Phase]
    server: dict[str, Any]
    tenant_id: UUID
    started_at: datetime
    finished_at: datetime

    def phase(self, side: str, fanout: int) -> Phase | None:
        return next((p for p in self.phases if p.side == side and p.fanout == fanout), None)

    @property
    def targets(self) -> list[dict[str, Any]]:
        judged = self.phase("intent", TARGET_FANOUT)
        if judged is None:  # a quick run: judged at its largest fan-out instead
            judged = max((p for p in self.phases if p.side == "intent"),
                         key=lambda p: p.fanout)
        no_miss = all(p.missed == 0 for p in self.phases if p.side == "intent")
        return [
            {"target": f"p50 at {judged.fanout} subscribers, ms", "max": TARGET_P50_MS,
             "value": round(judged.p50, 2), "met": judged.p50 <= TARGET_P50_MS},
            {"target": f"p99 at {judged.fanout} subscribers, ms", "max": TARGET_P99_MS,
             "value": round(judged.p99, 2), "met": judged.p99 <= TARGET_P99_MS},
            {"target": "no subscriber misses an event", "max": 0,
             "value": sum(p.missed for p in self.phases if p.side == "intent"),
             "met": no_miss},
        ]

    @property
    def all_met(self) -> bool:
        return all(t["met"] for t in self.targets)

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            **report_header(
                "realtime", self.started_at, self.finished_at, self.plan.as_json(),
                {**database, **self.server, "tenant_id": str(self.tenant_id)}, METHOD,
            ),
            "phases": [p.as_json() for p in self.phases],
            "targets": self.targets,
        }
