"""`intent rls lint`: the tenancy rules of row-level security, checked live or in SQL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from tools.cli.common import (
    EXIT_FAILED,
    Group,
    connect_sync,
    out,
    refuse,
    resolve_database,
    shown_path,
)

if TYPE_CHECKING:
    from projections.metadata import Catalog
    from tools.checks.rls import LintReport, Model


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def rls() -> None:
    """Row-level security checks for a multi-tenant Supabase project."""


@rls.command("lint")
@click.option("--database-url", metavar="URL",
              help="Lint this database (default: DATABASE_URL or the embedded cluster).")
@click.option("--sql", "sql_paths", multiple=True, metavar="PATH",
              type=click.Path(exists=True, dir_okay=True, path_type=Path),
              help="Lint SQL instead of a database: a file, or a folder of *.sql applied in "
              "name order. Repeatable.")
@click.option("--migrations", is_flag=True,
              help="Lint supabase/migrations/*.sql (or INTENT_MIGRATIONS_DIR) in order, "
              "without a database.")
@click.option("--projection", "projection_names", multiple=True, metavar="NAME",
              help="Lint a projection's generated SQL (from the application's catalog; "
              "'all' for every one), after any --sql/--migrations. Repeatable.")
@click.option("--schema", "schemas", multiple=True, metavar="S",
              help="A schema the app exposes (default: public and intent). Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def lint(
    database_url: str | None,
    sql_paths: tuple[Path, ...],
    migrations: bool,
    projection_names: tuple[str, ...],
    schemas: tuple[str, ...],
    as_json: bool,
) -> None:
    """Check that every tenant table is fenced by RLS and nothing leaks to anon.

    Without --sql/--migrations/--projection it reads a live database's catalogs; with them
    it replays the SQL (parsed by PostgreSQL's own parser) into the same model. Errors:
    tenant tables (with tenant_id) without RLS enabled and forced; client roles holding
    privileges there without a policy that references tenant_id, or with a permissive
    policy that does not; TRUNCATE for clients; anything granted to anon but SELECT on
    tables whose projection declares anon a reader (and functions anon may execute); policy
    conditions (or functions they call) reading user_metadata; views granted to clients
    that bypass RLS. Warnings: tables without tenant_id granted to clients with RLS off,
    and SQL the lint cannot follow. Exit 0 clean (warnings allowed), 1 on any error, 3 when
    the database cannot be reached.
    """
    from tools.checks.rls import DEFAULT_SCHEMAS, declared_anon_readers
    from tools.checks.rls import lint as run_lint

    offline = bool(sql_paths or migrations or projection_names)
    if offline and database_url:
        raise click.UsageError("--database-url lints a database; it cannot be combined with "
                               "--sql, --migrations or --projection")
    chosen = schemas or DEFAULT_SCHEMAS
    if offline:
        model = _sql_model(sql_paths, migrations, projection_names)
        where = ", ".join(model.sources) or "nothing"
    else:
        model, where = _live_model(database_url, chosen)
    anon_readers = declared_anon_readers(_catalog())
    report = run_lint(model, schemas=chosen, anon_readers=anon_readers)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        _print(report, where)
    if report.errors:
        sys.exit(EXIT_FAILED)


def _sql_model(
    sql_paths: tuple[Path, ...], migrations: bool, projection_names: tuple[str, ...]
) -> Model:
    from tools import settings
    from tools.checks.rls import load_sql

    files: list[Path] = []
    if migrations:
        folder = settings.migrations_dir()
        if not folder.is_dir():
            refuse(f"no migrations folder at {folder}")
        files += sorted(folder.glob("*.sql"))
    for path in sql_paths:
        files += sorted(path.glob("*.sql")) if path.is_dir() else [path]
    sources = [(shown_path(path), path.read_text(encoding="utf-8")) for path in files]
    sources += _projection_sql(projection_names)
    return load_sql(sources)


def _projection_sql(names: tuple[str, ...]) -> list[tuple[str, str]]:
    if not names:
        return []
    from projections.ddl import projection_ddl

    catalog = _catalog()
    try:
        chosen = list(catalog) if "all" in names else [catalog.get(n) for n in names]
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="--projection") from None
    return [
        (f"projection:{p.name}", ";\n".join(projection_ddl(p)) + ";\n") for p in chosen
    ]


def _live_model(database_url: str | None, schemas: tuple[str, ...]) -> tuple[Model, str]:
    from tools.checks.rls import load_live

    url, shown = resolve_database(database_url)
    with connect_sync(url, shown) as conn:
        return load_live(conn, schemas), shown


def _catalog() -> Catalog:
    """The application's projection catalog: which tables anon may read, what to generate."""
    from tools.cli.application import load_application

    return load_application().catalog


def _print(report: LintReport, where: str) -> None:
    out.print(
        f"RLS lint ({report.mode}: {escape(where)}; schemas {', '.join(report.schemas)}): "
        f"{report.tables} tables, {report.functions} functions checked"
    )
    for finding in [*report.errors, *report.warnings]:
        colour = "red" if finding.severity == "error" else "yellow"
        origin = f"  [dim]({escape(finding.origin)})[/dim]" if finding.origin else ""
        out.print(
            f"[{colour}]{finding.severity:<7}[/{colour}] [bold]{finding.code}[/bold] "
            f"{escape(finding.subject)}: {escape(finding.message)}{origin}"
        )
    errors, warnings = len(report.errors), len(report.warnings)
    if errors:
        out.print(f"[red]{errors} error(s)[/red], {warnings} warning(s)")
    else:
        out.print(f"[green]clean[/green] ({warnings} warning(s))")
