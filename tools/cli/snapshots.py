"""`intent snapshots verify`: each aggregate's newest snapshot against its events."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING
from uuid import UUID

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tools.cli.application import load_application
from tools.cli.common import (
    EXIT_FAILED,
    Group,
    database_url_option,
    err,
    out,
    probe,
    resolve_database,
)

if TYPE_CHECKING:
    from tools.checks.snapshots import VerifyReport


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def snapshots() -> None:
    """Aggregate snapshots: check them against the events they summarise."""


@snapshots.command("verify")
@database_url_option("Verify this database (default: DATABASE_URL or the embedded cluster).")
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="Verify a random sample of N aggregates instead of all that have snapshots.")
@click.option("--aggregate-type", metavar="T",
              help="Only aggregates of this type (e.g. inventory.item).")
@click.option("--tenant", "tenant_id", type=click.UUID, metavar="UUID",
              help="Only this tenant's aggregates.")
@click.option("--repair", "fix", is_flag=True,
              help="Rewrite each bad snapshot from the events (and drop any above it).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(
    database_url: str | None,
    sample: int | None,
    aggregate_type: str | None,
    tenant_id: UUID | None,
    fix: bool,
    as_json: bool,
) -> None:
    """Rehydrate every aggregate that has snapshots twice and compare.

    Once from scratch (all events, upcast) and once from its newest snapshot plus the later
    events; the states must agree at the snapshot's version and at the stream's head.
    Reports each mismatch, each snapshot that does not parse as the aggregate's state
    (corrupt) and each that claims a version beyond the stream, naming tenant, aggregate
    type and id, snapshot version and stream version. Exit 0 when all agree, 1 on any
    problem (with --repair: 0 when every problem was repaired), 3 when the database cannot
    be reached.
    """
    registry = load_application().registry

    if aggregate_type is not None and aggregate_type not in registry.aggregate_types():
        known = ", ".join(sorted(registry.aggregate_types()))
        raise click.BadParameter(f"unknown aggregate type {aggregate_type!r} (known: {known})",
                                 param_hint="--aggregate-type")
    report = asyncio.run(_run(database_url, aggregate_type, tenant_id, sample, fix))
    if as_json:
        from tools.checks.snapshots import dumps

        click.echo(dumps(report))
    else:
        _print(report, fix)
    if report.failed(repair=fix):
        sys.exit(EXIT_FAILED)


async def _run(
    database_url: str | None,
    aggregate_type: str | None,
    tenant_id: UUID | None,
    sample: int | None,
    fix: bool,
) -> VerifyReport:
    registry = load_application().registry
    from pump.store.connections import open_pool
    from tools.checks.snapshots import verify_snapshots

    url, shown = resolve_database(database_url)
    await probe(url, shown)
    pool = await open_pool(url, min_size=1, max_size=2, name="snapshots-verify")
    try:
        with Progress(
            TextColumn("verifying snapshots"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=err, transient=True,
        ) as progress:
            task = progress.add_task("verify", total=None)
            return await verify_snapshots(
                pool, registry, aggregate_type=aggregate_type, tenant_id=tenant_id,
                sample=sample, fix=fix,
                on_total=lambda total: progress.update(task, total=total),
                on_checked=lambda n: progress.advance(task, n),
            )
    finally:
        await pool.close()


def _print(report: VerifyReport, fix: bool) -> None:
    """One line per aggregate, never folded, so that a log can be grepped for an id."""
    for o in report.problems + report.skipped:
        label = (f"[red]{o.problem}[/red]" if o.problem
                 else f"[yellow]skipped ({o.skipped})[/yellow]")
        stream_version = "?" if o.stream_version is None else str(o.stream_version)
        out.print(
            f"{label} {o.stream.aggregate_type} {o.stream.aggregate_id} "
            f"(tenant {o.stream.tenant_id}): snapshot v{o.snapshot_version} "
            f"(state schema v{o.snapshot_schema_version}), stream v{stream_version}: "
            f"{escape(o.detail)}"
        )
    out.print(
        f"checked {report.checked} aggregate(s) with snapshots: {report.ok} ok, "
        f"{len(report.problems)} problem(s), {len(report.skipped)} skipped"
    )
    if fix and report.problems:
        out.print(f"repaired {len(report.repaired)}; still wrong: {len(report.unrepaired)}")
        for o in report.unrepaired:
            out.print(f"  [red]{o.problem}[/red] {o.stream} at snapshot v{o.snapshot_version}: "
                      f"{escape(o.detail)}")
    elif report.problems:
        out.print("run again with --repair to rewrite them from the events")
