"""`intent projections ...`: the read models declared in projections/. This module has the
group and the live database's side (drift, repair); projections_run runs and rebuilds them,
and `intent generate` writes their migrations.

drift and repair are thin click wrappers around `run_drift` / `run_repair`, which take the
projections (layouts) as a parameter, so that tests can run the real command logic on
metadata of their own; the commands pass the application's catalog.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click
import psycopg
from rich.table import Table as RichTable

from tools.cli.application import load_application
from tools.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_OK,
    Group,
    UnusableError,
    connect_sync,
    database_url_option,
    err,
    out,
    resolve_database,
    say_refusal,
)
from tools.cli.projections_run import rebuild, run

if TYPE_CHECKING:
    from projections.shapes import Difference
    from projections.sql import Layout

_DATABASE_OPTION = database_url_option(
    "Inspect this database instead of DATABASE_URL / the embedded cluster."
)


@click.group(cls=Group)
def projections() -> None:
    """Read models declared in projections/: run them, rebuild them, and compare a live
    database with their metadata (`intent generate` writes their migrations)."""


def _app_layouts() -> list[Layout]:
    return list(load_application().catalog)


def _connect(database_url: str | None) -> psycopg.Connection[tuple[object, ...]]:
    """The database, or `UnusableError` (exit 3)."""
    url, shown = resolve_database(database_url)
    return connect_sync(url, shown)


def _print_differences(differences: Sequence[Difference]) -> None:
    table = RichTable(title="projection drift", title_justify="left")
    for heading in ("table", "kind", "difference", "fix"):
        table.add_column(heading, overflow="fold")
    fixes = {"safe": "repair", "destructive": "repair --allow-destructive",
             "rebuild": "rebuild"}
    for difference in differences:
        table.add_row(difference.qualified, difference.kind, difference.detail,
                      fixes[difference.severity])
    out.print(table)


def run_drift(database_url: str | None, layouts: Sequence[Layout], *, as_json: bool) -> int:
    from projections.introspection import drift as find_drift

    try:
        with _connect(database_url) as conn:
            differences = find_drift(conn, layouts)
    except UnusableError as exc:
        say_refusal(str(exc))
        return EXIT_ENVIRONMENT
    if as_json:
        document = {
            "clean": not differences,
            "differences": [d.as_json() for d in differences],
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    elif differences:
        _print_differences(differences)
        err.print(f"{len(differences)} difference(s); `intent projections repair` prints "
                   "the SQL that removes them")
    else:
        out.print(f"no drift: {sum(len(lay.tables) for lay in layouts)} projection "
                   "table(s) match the metadata")
    return EXIT_FAILED if differences else EXIT_OK


def run_repair(
    database_url: str | None,
    layouts: Sequence[Layout],
    *,
    apply: bool,
    allow_destructive: bool = False,
) -> int:
    from projections.ddl import script
    from projections.introspection import drift as find_drift
    from projections.schema import repair_plan

    try:
        with _connect(database_url) as conn:
            differences = find_drift(conn, layouts)
            if not differences:
                out.print("no drift: nothing to repair")
                return EXIT_OK
            plan = repair_plan(differences, allow_destructive=allow_destructive)
            if plan.statements:
                out.print("-- repair: " + "; ".join(
                    f"{d.qualified} {d.kind}" for d in plan.fixed), markup=False)
                out.print(script(plan.statements), end="", markup=False)
            for difference in plan.rebuild:
                # The detail names the rebuild to run.
                err.print(f"[yellow]needs data, not repaired by ALTER:[/yellow] "
                           f"{difference.qualified}: {difference.detail}")
            for difference in plan.held_back:
                err.print(f"[yellow]destructive, skipped:[/yellow] {difference.qualified}: "
                           f"{difference.detail} (pass --allow-destructive to include it)")
            if not apply:
                if plan.statements:
                    err.print("not applied: pass --apply to run it in one transaction")
                return EXIT_FAILED
            if plan.statements:
                try:
                    with conn.transaction():
                        for statement in plan.statements:
                            conn.execute(statement.encode())
                except psycopg.Error as exc:
                    err.print(f"[red]intent: repair failed, nothing applied:[/red] "
                               f"{str(exc).strip()}")
                    return EXIT_FAILED
                err.print(f"applied {len(plan.statements)} statement(s)")
            remaining = find_drift(conn, layouts)
    except UnusableError as exc:
        say_refusal(str(exc))
        return EXIT_ENVIRONMENT
    if remaining:
        _print_differences(remaining)
        err.print(f"{len(remaining)} difference(s) remain")
        return EXIT_FAILED
    out.print("no drift after repair")
    return EXIT_OK


@projections.command("drift")
@_DATABASE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def drift(database_url: str | None, as_json: bool) -> None:
    """Compare a live database's projection tables with the metadata.

    Looks at each declared table's columns (type, nullability, default), primary key,
    indexes, row-level security (enabled and forced), policies, grants of the client roles
    and Realtime publication, and at tables of projections no longer declared. Rebuild twins
    (*__rebuild, *__old) are ignored. Exit 0 clean, 1 drift found, 3 database unreachable.
    """
    sys.exit(run_drift(database_url, _app_layouts(), as_json=as_json))


@projections.command("repair")
@_DATABASE_OPTION
@click.option("--apply", is_flag=True, help="Run the SQL (one transaction), then check again.")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Also drop what the metadata does not declare (columns, tables) and tighten "
    "nullability.",
)
def repair(database_url: str | None, apply: bool, allow_destructive: bool) -> None:
    """Print (or with --apply run) the SQL that removes projection drift.

    The SQL comes from the same generator as the migrations: add a column, create or drop an
    index, enable or force RLS, recreate a policy, fix grants, add to or drop from the
    publication. A change that needs data (a type change, a missing NOT NULL column without
    default, a different primary key) is named with the rebuild to run instead. Exit 0 when
    there is no drift (after --apply: when none is left), 1 otherwise, 3 database
    unreachable.
    """
    sys.exit(run_repair(database_url, _app_layouts(), apply=apply,
                        allow_destructive=allow_destructive))


for _command in (run, rebuild):
    projections.add_command(_command)
