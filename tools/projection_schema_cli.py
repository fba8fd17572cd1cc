"""`intent projections generate | check | drift | repair`: projection tables as SQL.

Each command is a thin click wrapper around a `run_*` function that takes the projections
(layouts) as a parameter, so that tests can run the real command logic on metadata of their
own; the commands pass the application's catalog (projections/app.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import psycopg
from rich.console import Console
from rich.table import Table as RichTable

from tools.command_types_cli import MIGRATIONS_DIR_OPTION, migrations_folder

if TYPE_CHECKING:
    from projections.schema import Difference
    from projections.sql import Layout

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_ENVIRONMENT = 3

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

_DATABASE_OPTION = click.option(
    "--database-url",
    metavar="URL",
    default=None,
    help="Inspect this database instead of DATABASE_URL / the embedded cluster.",
)


def _app_layouts() -> list[Layout]:
    from projections.app import catalog

    return list(catalog)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class DatabaseUnreachableError(Exception):
    """The database cannot be reached or the settings are unusable (exit 3)."""


def _connect(database_url: str | None) -> psycopg.Connection[tuple[object, ...]]:
    from tools import settings

    try:
        url = database_url or settings.database().url
    except settings.SettingsError as exc:
        raise DatabaseUnreachableError(str(exc)) from None
    try:
        return psycopg.connect(url, connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise DatabaseUnreachableError(f"cannot reach the database: {str(exc).strip()}") from None


# -- generate / check ----------------------------------------------------------------------


def run_generate(
    folder: Path, layouts: Sequence[Layout], *, allow_destructive: bool = False
) -> int:
    from projections.migration_state import RefusedError, StateError, generate

    try:
        result = generate(folder, layouts, allow_destructive=allow_destructive)
    except (RefusedError, StateError) as exc:
        _err.print(f"[red]intent:[/red] {exc}")
        return EXIT_FINDING
    if result.written is None:
        previous = result.plan.previous
        latest = previous.path.name if previous else "no projections declared"
        _out.print(f"projection migrations are up to date ({latest}); nothing written")
        return EXIT_OK
    _out.print(f"wrote {_shown(result.written)}")
    for change in result.plan.changes:
        mark = "[yellow]![/yellow]" if change.severity == "destructive" else "+"
        _out.print(f"  {mark} {change.qualified}: {change.detail}")
    if not result.plan.changes:
        _out.print("  (no SQL changes: the state differs in form only, e.g. declaration order)")
    _out.print("apply it with `./run db migrate`")
    return EXIT_OK


def run_check(folder: Path, layouts: Sequence[Layout]) -> int:
    from projections.migration_state import check

    result = check(folder, layouts)
    if result.ok:
        _out.print(result.message)
        return EXIT_OK
    _err.print(f"[red]intent:[/red] {result.message}")
    return EXIT_FINDING


@click.command("generate")
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="Also write changes that drop data or may fail on existing rows (drop a table or "
    "column, change a type or primary key, make a column not null).",
)
@MIGRATIONS_DIR_OPTION
def generate(allow_destructive: bool, migrations_dir: Path | None) -> None:
    """Write a migration for the projection tables when their metadata changed.

    Compares the metadata in projections/ (tables, columns, indexes, readers, realtime,
    schema; not handlers, events read, mode or version) with the state recorded in the
    newest <YYYYMMDDHHMMSS>_projections.sql, and writes a new one with the SQL in between.
    Exit 0 when written or already up to date; 1 when a change is refused (destructive
    without --allow-destructive, or a NOT NULL column without default on an existing table).
    """
    sys.exit(run_generate(migrations_folder(migrations_dir), _app_layouts(),
                          allow_destructive=allow_destructive))


@click.command("check")
@MIGRATIONS_DIR_OPTION
def check(migrations_dir: Path | None) -> None:
    """Exit 1 when the committed projection migrations do not match the metadata.

    For CI: the newest generated *_projections.sql must record exactly the metadata's
    layout; otherwise prints what differs and how to fix it (`intent projections generate`).
    """
    sys.exit(run_check(migrations_folder(migrations_dir), _app_layouts()))


# -- drift / repair ------------------------------------------------------------------------


def _print_differences(differences: Sequence[Difference]) -> None:
    table = RichTable(title="projection drift", title_justify="left")
    for heading in ("table", "kind", "difference", "fix"):
        table.add_column(heading, overflow="fold")
    fixes = {"safe": "repair", "destructive": "repair --allow-destructive",
             "rebuild": "rebuild"}
    for difference in differences:
        table.add_row(difference.qualified, difference.kind, difference.detail,
                      fixes[difference.severity])
    _out.print(table)


def run_drift(database_url: str | None, layouts: Sequence[Layout], *, as_json: bool) -> int:
    from projections.schema import drift as find_drift

    try:
        with _connect(database_url) as conn:
            differences = find_drift(conn, layouts)
    except DatabaseUnreachableError as exc:
        _err.print(f"[red]intent:[/red] {exc}")
        return EXIT_ENVIRONMENT
    if as_json:
        document = {
            "clean": not differences,
            "differences": [d.as_json() for d in differences],
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    elif differences:
        _print_differences(differences)
        _err.print(f"{len(differences)} difference(s); `intent projections repair` prints "
                   "the SQL that removes them")
    else:
        _out.print(f"no drift: {sum(len(lay.tables) for lay in layouts)} projection "
                   "table(s) match the metadata")
    return EXIT_FINDING if differences else EXIT_OK


def run_repair(
    database_url: str | None,
    layouts: Sequence[Layout],
    *,
    apply: bool,
    allow_destructive: bool = False,
) -> int:
    from projections.schema import drift as find_drift
    from projections.schema import repair_plan
    from projections.sql import script

    try:
        with _connect(database_url) as conn:
            differences = find_drift(conn, layouts)
            if not differences:
                _out.print("no drift: nothing to repair")
                return EXIT_OK
            plan = repair_plan(differences, allow_destructive=allow_destructive)
            if plan.statements:
                _out.print("-- repair: " + "; ".join(
                    f"{d.qualified} {d.kind}" for d in plan.fixed), markup=False)
                _out.print(script(plan.statements), end="", markup=False)
            for difference in plan.rebuild:
                # The detail names the rebuild to run.
                _err.print(f"[yellow]needs data, not repaired by ALTER:[/yellow] "
                           f"{difference.qualified}: {difference.detail}")
            for difference in plan.held_back:
                _err.print(f"[yellow]destructive, skipped:[/yellow] {difference.qualified}: "
                           f"{difference.detail} (pass --allow-destructive to include it)")
            if not apply:
                if plan.statements:
                    _err.print("not applied: pass --apply to run it in one transaction")
                return EXIT_FINDING
            if plan.statements:
                try:
                    with conn.transaction():
                        for statement in plan.statements:
                            conn.execute(statement.encode())
                except psycopg.Error as exc:
                    _err.print(f"[red]intent: repair failed, nothing applied:[/red] "
                               f"{str(exc).strip()}")
                    return EXIT_FINDING
                _err.print(f"applied {len(plan.statements)} statement(s)")
            remaining = find_drift(conn, layouts)
    except DatabaseUnreachableError as exc:
        _err.print(f"[red]intent:[/red] {exc}")
        return EXIT_ENVIRONMENT
    if remaining:
        _print_differences(remaining)
        _err.print(f"{len(remaining)} difference(s) remain")
        return EXIT_FINDING
    _out.print("no drift after repair")
    return EXIT_OK


@click.command("drift")
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


@click.command("repair")
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
