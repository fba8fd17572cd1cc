"""The tables and summary `intent bench realtime` prints, and its JSON's default name."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from tools.bench.realtime.results import Results
from tools.bench.stats import json_name, outcome_line, server_line, verdict


def realtime_table(results: Results) -> Table:
    plan = results.plan
    table = Table(
        title=(f"realtime: commit to delivery, {plan.messages} messages per phase at "
               f"{plan.rate:g}/s"),
        caption=("intent: event appended -> relay -> WAL -> gateway -> sockets; baseline: a "
                 "socket's broadcast relayed by the gateway (no database)"),
    )
    for column in ("subscribers", "side", "p50 ms", "p99 ms", "max ms", "deliveries/s",
                   "missed", "p50 ÷ baseline"):
        table.add_column(column, justify="right")
    for fanout in plan.fanouts:
        intent, baseline = results.phase("intent", fanout), results.phase("baseline", fanout)
        for phase in (intent, baseline):
            if phase is None:
                continue
            ratio = ""
            if phase is intent and baseline is not None and baseline.p50:
                ratio = f"{intent.p50 / baseline.p50:.1f}"
            figures = phase.as_json()
            table.add_row(str(fanout), phase.side, f"{phase.p50:.1f}", f"{phase.p99:.1f}",
                          f"{figures['max_ms']}", f"{phase.deliveries_per_second:,.0f}",
                          str(phase.missed), ratio)
    return table


def targets_table(results: Results) -> Table:
    table = Table(title="targets")
    for column in ("target", "value", "limit", ""):
        table.add_column(column, justify="right")
    for target in results.targets:
        table.add_row(target["target"], f"{target['value']}", f"≤ {target['max']}",
                      verdict(bool(target["met"])))
    return table


def summary_lines(results: Results) -> list[str]:
    return [server_line(results.server), outcome_line(results.all_met)]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("realtime", now)
