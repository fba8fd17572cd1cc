"""What `intent bench projections` found, and its JSON."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from tools.bench.projections.plan import METHOD, TARGET_EVENTS_PER_SECOND, TARGET_RATIO, Plan
from tools.bench.stats import Comparison, Series, median, report_header


@dataclass
class Results:
    plan: Plan
    rebuild: Comparison  # intent: rebuild events/s; baseline: COPY rows/s
    catch_up: Series  # events/s until the swap (twins created and caught up)
    python_path: Series  # the same rebuild through the Python path, events/s
    runner: Series  # the async runner's catch-up from the same position, events/s
    time_ratios: list[float]  # per round: COPY seconds / rebuild seconds
    rows: int
    server: dict[str, Any]
    tenant_id: UUID
    started_at: datetime
    finished_at: datetime

    @property
    def events_met(self) -> bool:
        return self.rebuild.intent.median >= TARGET_EVENTS_PER_SECOND

    @property
    def all_met(self) -> bool:
        return self.events_met and self.rebuild.met

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        c = self.rebuild
        return {
            **report_header(
                "projections", self.started_at, self.finished_at, self.plan.as_json(),
                {**database, **self.server, "tenant_id": str(self.tenant_id)}, METHOD,
            ),
            "sections": {
                "rebuild": {
                    "intent": c.intent.as_json(),
                    "catch_up": self.catch_up.as_json(),
                    "baseline": c.baseline.as_json(),
                    "rows": self.rows,
                    "events_per_row": round(self.plan.total_events / max(self.rows, 1), 3),
                    "ratio": round(c.ratio, 4),
                    "paired_ratio": round(c.paired_ratio(c.baseline), 4),
                    "python_path": self.python_path.as_json(),
                    "python_path_ratio": round(
                        self.python_path.median / c.baseline.median, 4),
                    "runner_catch_up": self.runner.as_json(),
                    "runner_catch_up_ratio": round(self.runner.median / c.baseline.median, 4),
                    "time_ratio": round(median(self.time_ratios), 4),
                    "time_ratio_per_round": [round(v, 4) for v in self.time_ratios],
                    "targets": [
                        {"target": "rebuild events/s", "min": TARGET_EVENTS_PER_SECOND,
                         "value": round(c.intent.median, 1), "met": self.events_met},
                        {"target": "rebuild events/s / COPY rows/s", "min": TARGET_RATIO,
                         "value": round(c.ratio, 4), "met": c.met},
                    ],
                }
            },
        }
