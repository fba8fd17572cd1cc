"""The tables and summary `intent bench commands` prints, and its JSON's default name."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table

from tools.bench.commands.plan import PROCESS_MODEL
from tools.bench.commands.results import Results
from tools.bench.stats import json_name, median, outcome_line, rate_cell, server_line, verdict


def commands_table(results: Results) -> Table:
    table = Table(
        title=f"command pipeline (median of {results.plan.rounds} rounds)",
        caption=(
            "throughput: commands/s from first submit to last processed, ± half the "
            "interquartile range; drain: a backlog submitted with no pump running, from pump "
            "start to last processed; low load: one command at a time, submit to seen processed, "
            "every round's samples pooled; under load: updated_at - created_at"
        ),
    )
    table.add_column("side")
    table.add_column("commands/s", justify="right")
    table.add_column("vs direct", justify="right")
    table.add_column("submit/s", justify="right")
    table.add_column("drain commands/s", justify="right")
    table.add_column("vs direct", justify="right")
    table.add_column("under load p50/p99 ms", justify="right")
    table.add_column("low load p50 ms", justify="right")
    table.add_column("low load p99 ms", justify="right")
    direct = results.direct.rate
    for side in results.sides.values():
        rate = side.rate
        table.add_row(
            side.side.name,
            rate_cell(rate),
            f"{rate.median / direct.median:.2f}",
            f"{median(side.submit_rates):,.0f}",
            rate_cell(side.drain),
            f"{side.drain.median / results.direct.drain.median:.2f}",
            f"{median(side.load_db_p50):,.0f} / {median(side.load_db_p99):,.0f}",
            f"{side.p50:.1f}",
            f"{side.p99:.1f}",
        )
    return table


def targets_table(results: Results) -> Table:
    table = Table(title="targets")
    table.add_column("target")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("")
    for t in results.targets:
        table.add_row(
            t.name, f"{t.value:,.2f}", f"{'≥' if t.at_least else '≤'} {t.limit:,.2f}",
            verdict(t.met),
        )
    return table


def summary_lines(results: Results) -> list[str]:
    lines = [
        f"{server_line(results.server)}; {PROCESS_MODEL}",
        f"paired temporal/direct ratio (median of per-round ratios): "
        f"{results.comparison.paired_ratio(results.direct.rate):.2f}",
    ]
    if results.hop is not None:
        hop = results.hop
        lines.append(
            f"function hop (one request at a time, to the 202): rpc p50/p99 "
            f"{hop.percentile('rpc', 50):.1f}/{hop.percentile('rpc', 99):.1f} ms, "
            f"function {hop.percentile('function', 50):.1f}/"
            f"{hop.percentile('function', 99):.1f} ms: the hop adds "
            f"{hop.overhead(50):.1f} ms at p50, {hop.overhead(99):.1f} ms at p99"
        )
    compared = results.tracing_comparisons()
    if compared is not None and results.traced is not None:
        live, drain = compared
        lines.append(
            f"tracing on (in-memory exporter) vs off, Temporal side, same rounds: live "
            f"{live.ratio:.2f} (paired {live.paired_ratio(results.temporal.rate):.2f}, "
            f"overhead {(1 - live.ratio) * 100:.1f}%), drain {drain.ratio:.2f} (paired "
            f"{drain.paired_ratio(results.temporal.drain):.2f}, overhead "
            f"{(1 - drain.ratio) * 100:.1f}%), low-load p50 "
            f"{results.traced.p50 - results.temporal.p50:+.1f} ms; "
            f"{results.spans_recorded:,} spans recorded"
        )
        untraced_cpu = median(results.temporal.drain_cpu_us)
        traced_cpu = median(results.traced.drain_cpu_us)
        lines.append(
            f"drain CPU of the pump+worker process per command (median of rounds): untraced "
            f"{untraced_cpu:,.0f} us, traced {traced_cpu:,.0f} us "
            f"({(traced_cpu / untraced_cpu - 1) * 100:+.1f}%)"
        )
    bad = sum(s.rejected for s in results.sides.values())
    if bad:
        lines.append(f"[red]{bad} command(s) were not processed[/red]")
    lines.append(outcome_line(results.all_met))
    return lines


def default_json_name(now: datetime | None = None) -> str:
    return json_name("commands", now)
