"""`intent status`: commands, batches, feed followers and sagas of a running Intent."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from tools.cli.application import load_application
from tools.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    UnusableError,
    connect,
    database_url_option,
    refuse,
    resolve_database,
    say_refusal,
    wide_out,
)

if TYPE_CHECKING:
    from tools.checks.status import DevStack, StatusReport


@click.command("status", context_settings={"help_option_names": ["-h", "--help"]})
@database_url_option("Read this database (default: DATABASE_URL or the embedded cluster).")
@click.option("--temporal-address", metavar="HOST:PORT", envvar="TEMPORAL_ADDRESS",
              default="127.0.0.1:7233", show_default=True,
              help="Where to count running sagas (also TEMPORAL_ADDRESS).")
@click.option("--namespace", envvar="TEMPORAL_NAMESPACE", default="default", show_default=True,
              help="Temporal namespace (also TEMPORAL_NAMESPACE).")
@click.option("--no-temporal", is_flag=True, help="Skip the sagas (no Temporal call).")
@click.option("--stuck-after", type=click.FloatRange(min=0), default=60.0, show_default=True,
              metavar="SECONDS",
              help="A dispatched batch not finished after this long counts as stuck (the "
              "pump's --sweep-after).")
@click.option("--held-back-after", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="An open transaction older than this holding the feed back needs attention.")
@click.option("--relay-behind-after", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS",
              help="A broadcast relay whose oldest unsent event is older than this needs "
              "attention.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(
    database_url: str | None,
    temporal_address: str,
    namespace: str,
    no_temporal: bool,
    stuck_after: float,
    held_back_after: float,
    relay_behind_after: float,
    as_json: bool,
) -> None:
    """What the stack is doing: commands, batches, projections, the feed, sagas.

    \b
    commands     how many are pending, dispatched, processed, rejected, failed; the
                 oldest pending one's age; failures in the last hour
    batches      dispatched longer than --stuck-after and not finished
    followers    each async projection, the saga router and the broadcast relay:
                 checkpoint, lag in events and seconds (the oldest event not yet handled;
                 for the relay, not yet sent to Realtime), the error that stopped it;
                 inline projections are listed (they have no lag)
    held back    the oldest open transaction with an id: no feed follower passes it
    sagas        running saga workflows by saga, from Temporal (skipped with
                 --no-temporal; an unreachable Temporal is reported, not fatal)
    intent dev   when a local `intent dev` runs this database: what of it is not
                 serving (postgres restarting, a process waiting for postgres), from
                 its <state>/dev.json; said also when the database cannot be reached

    Reads only; works on any database Intent's migrations were applied to. Exit 0 when
    nothing needs attention, 1 when something does (a stuck batch, a stopped follower,
    a broadcast relay behind by more than --relay-behind-after, a long-held feed,
    failures in the last hour, Temporal unreachable, a process of `intent dev` not
    serving), 3 when the database cannot be reached.
    """
    report = asyncio.run(_run(database_url, temporal_address, namespace, no_temporal,
                              stuck_after, held_back_after, relay_behind_after))
    if as_json:
        from tools.checks.status import dumps

        click.echo(dumps(report), nl=False)
    else:
        _print(report)
    if report.attention:
        sys.exit(EXIT_FAILED)


async def _run(
    database_url: str | None,
    temporal_address: str,
    namespace: str,
    no_temporal: bool,
    stuck_after: float,
    held_back_after: float,
    relay_behind_after: float,
) -> StatusReport:
    import psycopg

    catalog = load_application().catalog
    from tools import settings
    from tools.checks.status import read_dev_stack, read_sagas, read_status

    url, shown = resolve_database(database_url)
    dev = read_dev_stack(settings.state_dir(), url)
    try:
        conn = await connect(url, shown)
    except UnusableError as exc:
        # Unreachable: say so, and why when `intent dev` knows; exit 3.
        if dev is None:
            raise
        say_refusal(str(exc))
        _say_dev_unreachable(dev)
        sys.exit(EXIT_ENVIRONMENT)
    try:
        report = await read_status(
            conn, list(catalog), database=shown,
            stuck_after=timedelta(seconds=stuck_after),
            held_back_warn=timedelta(seconds=held_back_after),
            relay_behind_warn=timedelta(seconds=relay_behind_after),
        )
    except psycopg.errors.UndefinedTable as exc:
        refuse(f"{shown} has no Intent schema ({str(exc).strip()}); run `intent db migrate` "
               "first")
    finally:
        await conn.close()
    report.dev = read_dev_stack(settings.state_dir(), url)  # as of now, not the start
    if not no_temporal:
        report.sagas = await read_sagas(temporal_address, namespace)
    return report


def _say_dev_unreachable(dev: DevStack) -> None:
    notes = dev.notes() or ["every process says it is ready"]
    say_refusal(f"`intent dev` (pid {dev.pid}) runs this database: {'; '.join(notes)} "
                f"(as of {dev.updated_at}); try again in a moment")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _print(report: StatusReport) -> None:
    out = wide_out(160)
    out.print(f"[bold]database[/bold] {report.database}   feed head {report.feed_head or '-'}")
    c = report.commands
    counts = "  ".join(f"{name} {count:,}" for name, count in c.by_status.items())
    out.print(f"[bold]commands[/bold] {counts}   oldest pending "
              f"{_seconds(c.oldest_pending_seconds)}   failed in the last hour "
              f"{c.failed_last_hour}")
    if report.stuck_batches:
        out.print(f"[bold]stuck batches[/bold] (dispatched > {report.stuck_after_seconds:g} s)")
        for b in report.stuck_batches:
            error = f"   last error: {escape(str(b.last_error))}" if b.last_error else ""
            out.print(f"  {b.batch_id}  {b.command_count} command(s)  dispatched "
                      f"{b.dispatches}x  {_seconds(b.age_seconds)}{error}")
    else:
        out.print("[bold]stuck batches[/bold] none")
    table = Table(title="feed followers", title_justify="left")
    for column in ("consumer", "kind", "checkpoint", "lag events", "lag", "state"):
        table.add_column(column, justify="right" if column.startswith("lag") else "left")
    for f in report.consumers:
        lag = f"≥ {f.lag_events:,}" if f.lag_capped else f"{f.lag_events:,}"
        state = ("[red]stopped: " + escape(_error_text(f.error)) + "[/red]"
                 if f.error is not None else "[green]ok[/green]")
        table.add_row(f.consumer, f.kind, f.checkpoint or "(not started)", lag,
                      _seconds(f.lag_seconds), state)
    for p in report.inline_projections:
        table.add_row(f"projection:{p.name}@{p.version}", "inline", "-", "-", "-",
                      "in the command transaction")
    out.print(table)
    held = report.held_back_by
    if held is None:
        out.print("[bold]held back by[/bold] nothing (no open transaction with an id)")
    else:
        out.print(f"[bold]held back by[/bold] transaction {held.transaction_id} (pid {held.pid},"
                  f" {held.state or '?'}, {escape(held.application or '-')}) for "
                  f"{_seconds(held.age_seconds)}: {escape((held.query or '').strip()[:80])}")
    sagas = report.sagas
    if sagas is None:
        out.print("[bold]sagas[/bold] not asked (--no-temporal)")
    elif not sagas.reachable:
        reason = escape(sagas.error or "")
        out.print(f"[bold]sagas[/bold] [red]Temporal not reachable[/red]: {reason}")
    else:
        running = ", ".join(f"{name} {n}" for name, n in sorted(sagas.running.items()))
        more = "" if sagas.listed_all else " (listing stopped at its limit)"
        out.print(f"[bold]sagas running[/bold] {running or 'none'}{more}")
        states = "  ".join(f"{state} {n:,}" for state, n in sagas.by_state.items())
        out.print(f"[bold]sagas by state[/bold] {states}")
    if report.dev is not None:
        states = ", ".join(f"{name} {state}" for name, state in report.dev.processes.items())
        out.print(f"[bold]intent dev[/bold] pid {report.dev.pid}: postgres "
                  f"{report.dev.postgres}; {escape(states)}")
    if report.attention:
        out.print("[bold red]needs attention[/bold red]")
        for note in report.attention:
            out.print(f"  - {escape(note)}")
    else:
        out.print("[green]all well[/green]")


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
