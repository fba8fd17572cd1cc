"""The tables and summary `intent bench append` prints, and its JSON's default name."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from domain.inventory import Item
from tools.bench.append.plan import LOAD_KINDS, SNAPSHOT_KINDS, TARGET_LOAD_GROWTH
from tools.bench.append.results import Results
from tools.bench.stats import (
    Series,
    json_name,
    outcome_line,
    rate_cell,
    server_line,
    spread_text,
    verdict,
)


def _ms_cell(series: Series) -> str:
    value = series.median
    text = f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    return f"{text} {spread_text(series)}"


def throughput_table(results: Results) -> Table:
    table = Table(
        title=f"append throughput, events/s (median of {results.plan.rounds} rounds)",
        caption=(
            "ratio = median Intent / median raw (in brackets: the median of the per-round "
            "ratios); ± half the interquartile range over the rounds"
        ),
    )
    table.add_column("section")
    table.add_column("Intent", justify="right")
    table.add_column("raw, JSON pre-serialised", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    table.add_column("raw, psycopg Jsonb", justify="right")
    table.add_column("ratio", justify="right")
    sections = (
        ("(a) 1 writer, 1 event/tx, INSERT", results.single),
        (f"(b) {results.plan.writers} writers, 1 event/tx, INSERT", results.concurrent),
        (f"(c) {results.plan.batch_size} events/tx vs COPY", results.batch),
    )
    for title, c in sections:
        other = c.also[0] if c.also else None
        table.add_row(
            title,
            rate_cell(c.intent),
            rate_cell(c.baseline),
            f"{c.ratio:.2f} [dim]({c.paired_ratio(c.baseline):.2f})[/dim]",
            f"≥ {c.min_ratio:.2f}",
            verdict(c.met),
            rate_cell(other) if other else "",
            f"{c.ratio_to(other):.2f}" if other else "",
        )
    return table


def load_table(results: Results) -> Table:
    load = results.load
    short, long = min(load.lengths), max(load.lengths)
    every = Item.snapshot_every or 0
    table = Table(
        title=(
            f"aggregate load (inventory Item), ms (median of {results.plan.load_rounds} rounds)"
        ),
        caption=(
            f"snapshots every {every} events; '+{every - 1} tail': loaded as of version N-1, "
            f"so {every - 1} events are replayed after the snapshot; raw = select payload ... "
            "order by version + a Python sum"
        ),
    )
    table.add_column("stream")
    table.add_column("snapshots", justify="right")
    table.add_column(f"snapshot +{every - 1} tail", justify="right")
    table.add_column("no snapshots", justify="right")
    table.add_column("raw select+fold", justify="right")
    table.add_column("no snapshots / raw", justify="right")
    for length in load.lengths:
        table.add_row(
            f"{length:,} events",
            *(_ms_cell(load.series[kind][length]) for kind in LOAD_KINDS),
            f"{load.ratio_to_baseline('no_snapshots', length):.1f}x",
        )
    table.add_section()
    table.add_row(
        f"growth {long // 1000}k / {short // 1000}k",
        *(f"{load.growth(kind):.2f}" for kind in LOAD_KINDS),
        "",
    )
    table.add_row(
        "target", f"≤ {TARGET_LOAD_GROWTH:.2f}", f"≤ {TARGET_LOAD_GROWTH:.2f}", "", "", "",
    )
    table.add_row(
        "", *(verdict(load.growth(k) <= TARGET_LOAD_GROWTH) for k in SNAPSHOT_KINDS), "", "", "",
    )
    return table


def summary_lines(results: Results) -> list[str]:
    return [
        server_line(results.server, "fsync", "synchronous_commit", "full_page_writes"),
        outcome_line(results.all_met, see="the tables"),
    ]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("append", now)
