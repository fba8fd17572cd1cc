"""The table and summary `intent bench projections` prints, and its JSON's default name."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from tools.bench.projections.plan import TARGET_EVENTS_PER_SECOND, TARGET_RATIO
from tools.bench.projections.results import Results
from tools.bench.stats import json_name, median, outcome_line, rate_cell, server_line, verdict


def projections_table(results: Results) -> Table:
    c = results.rebuild
    plan = results.plan
    table = Table(
        title=(
            f"projection rebuild: {plan.total_events:,} events over {plan.items:,} items "
            f"(median of {plan.rounds} rounds)"
        ),
        caption=(
            "ratio = rebuild events/s ÷ COPY rows/s (in brackets: median of per-round ratios); "
            "time ratio = COPY seconds ÷ rebuild seconds; ± half the interquartile range"
        ),
    )
    table.add_column("")
    table.add_column("median", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    table.add_row("rebuild, events/s", rate_cell(c.intent), f"≥ {TARGET_EVENTS_PER_SECOND:,.0f}",
                  verdict(results.events_met))
    table.add_row("  until the swap, events/s", rate_cell(results.catch_up), "", "")
    table.add_row(f"COPY of the {results.rows:,} rows, rows/s", rate_cell(c.baseline), "", "")
    table.add_row("ratio", f"{c.ratio:.2f} [dim]({c.paired_ratio(c.baseline):.2f})[/dim]",
                  f"≥ {TARGET_RATIO:.2f}", verdict(c.met))
    table.add_row("time ratio", f"{median(results.time_ratios):.3f}", "", "")
    python = results.python_path
    table.add_row("rebuild through Python, events/s", rate_cell(python), "", "")
    table.add_row("  its ratio", f"{python.median / c.baseline.median:.2f}", "", "")
    runner = results.runner
    table.add_row("runner catch-up, events/s", rate_cell(runner), "", "")
    table.add_row("  its ratio", f"{runner.median / c.baseline.median:.2f}", "", "")
    return table


def summary_lines(results: Results) -> list[str]:
    return [server_line(results.server), outcome_line(results.all_met)]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("projections", now)
