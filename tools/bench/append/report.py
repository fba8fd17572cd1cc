"""The tables and summary `intent bench append` prints, and its JSON's default name."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from tools.bench.append.results import Results, Workload
from tools.bench.stats import (
    Series,
    json_name,
    median,
    outcome_line,
    server_line,
    spread_text,
    verdict,
)


def _figure(series: Series, unit: str) -> str:
    return f"{_short(series.median, unit)} {spread_text(series)}"


def _short(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.1f} ms" if value >= 10 else f"{value:,.3f} ms"
    return f"{value:,.0f}/s"


def workloads_table(results: Results) -> Table:
    """Each workload's medians, its ratio and its target."""
    table = Table(
        title=(
            f"append: Intent's public paths beside RAW, median of {results.plan.rounds} "
            f"paired rounds (broadcast: {results.broadcast['mode']})"
        ),
        caption=(
            "ratio: median of the per-round ratios (W1-W4 Intent / RAW events/s; W5, W5p "
            "RAW ms / Intent ms); ± half the interquartile range over the rounds; W5 is "
            "judged on Intent's time, its ratio is for reference"
        ),
    )
    table.add_column("workload", no_wrap=True)
    table.add_column("Intent", justify="right")
    table.add_column("RAW", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    for w in results.workloads:
        ratio = f"{w.ratio:.2f}" if w.target.kind == "min_ratio" else f"[dim]{w.ratio:.2f}[/dim]"
        table.add_row(
            f"{w.key} {w.title}", _figure(w.intent, w.unit), _figure(w.raw, w.unit), ratio,
            w.target.text, verdict(w.met),
        )
    return table


def _drain(w: Workload) -> tuple[str, str, str]:
    """The relay's drain after the Intent side: median and max ms, median events waiting."""
    if w.drains is None or not w.drains.rounds:
        return "-", "-", "-"
    ms = [d.seconds * 1000 for d in w.drains.rounds]
    late = sum(d.timed_out for d in w.drains.rounds)
    waiting = median([float(d.waiting) for d in w.drains.rounds])
    return (f"{median(ms):,.0f}", f"{max(ms):,.0f}" + (f" ({late} timed out)" if late else ""),
            f"{waiting:,.0f}")


def latency_table(results: Results) -> Table:
    """Per statement (an append, a load): p50 and p99 of both sides; the relay's drain."""
    table = Table(
        title="per statement, ms (every timed round), and the relay's drain after Intent",
        caption=(
            "drain: ms from the end of an Intent side's timed part until no event waited "
            "to be broadcast, median and max over the rounds; waiting: events not yet "
            "broadcast when the timed part ended (median); '-' with the trigger, which "
            "broadcasts inside each append"
        ),
    )
    table.add_column("workload", no_wrap=True)
    names = ("Intent p50", "Intent p99", "RAW p50", "RAW p99", "drain med", "drain max",
             "waiting")
    for name in names:
        table.add_column(name, justify="right")
    for w in results.workloads:
        i, r = w.latency["intent"], w.latency["raw"]
        table.add_row(
            w.key, f"{i.p50:.2f}", f"{i.p99:.2f}", f"{r.p50:.2f}",
            f"{r.p99:.2f}", *_drain(w),
        )
    return table


def rounds_table(results: Results) -> Table:
    """Each workload's ratio in every round, and the baseline's own figure per round."""
    table = Table(title="ratio per round (RAW's own figure below)")
    table.add_column("workload", no_wrap=True)
    for number in range(results.plan.rounds):
        table.add_column(f"r{number + 1}", justify="right")
    for w in results.workloads:
        table.add_row(w.key, *(f"{r:.2f}" for r in w.ratios))
        raw = [f"[dim]{_short(v, w.unit)}[/dim]" for v in w.raw.per_round]
        table.add_row("[dim]  RAW[/dim]", *raw)
    return table


def summary_lines(results: Results) -> list[str]:
    sizes = results.json_sizes
    broadcast = results.broadcast
    lag = broadcast.get("events_waiting_from")
    return [
        server_line(results.server, "fsync", "synchronous_commit", "full_page_writes"),
        f"broadcast: {broadcast['mode']}" + (f" (events waiting: {lag})" if lag else ""),
        f"JSON per event (both sides): payload {sizes['payload']:.0f} B, metadata "
        f"{sizes['metadata']:.0f} B",
        outcome_line(results.all_met, see="the tables"),
    ]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("append", now)
