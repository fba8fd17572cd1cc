"""`intent db ...`: the embedded PostgreSQL cluster and the migrations."""

from __future__ import annotations

import sys

import click

from tools import settings
from tools.cli.common import EXIT_USAGE, Group, database_url_option, err, out, refuse
from tools.local.migrations import Migration, MigrationReport


@click.group(cls=Group)
def db() -> None:
    """The database: the embedded PostgreSQL cluster and the migrations."""


def _announce(migration: Migration) -> None:
    err.print(f"  applying {migration.path.name}")


def _report(report: MigrationReport) -> None:
    if report.applied:
        err.print(f"applied {len(report.applied)} migration(s)")
    else:
        err.print(f"no pending migrations ({len(report.already)} already applied)")
    for name in report.changed:
        err.print(
            f"[yellow]warning:[/yellow] {name} was applied earlier but the file has changed "
            "since; applied migrations are never re-run (add a new migration instead)"
        )


@db.command("start")
def db_start() -> None:
    """Initialise (first time) and start the embedded cluster, then bootstrap and migrate.

    Prints the DATABASE_URL on standard output, so `export DATABASE_URL=$(./run db start)`
    works. Runs as the `postgres` OS user when invoked as root.
    """
    from tools.local import db as ops

    result = ops.start(on_apply=_announce)
    state = "created and started" if result.created else "running"
    err.print(f"PostgreSQL {state} on 127.0.0.1:{result.cluster.port} ({result.cluster.data_dir})")
    _report(result.migrations)
    out.print(result.cluster.url)


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster (the server its postmaster.pid names); keeps the data."""
    from tools.local import db as ops

    err.print("stopped" if ops.stop() else "not running")


@db.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask; needed when there is no terminal.")
def db_reset(yes: bool) -> None:
    """Drop the embedded cluster's database, recreate it, bootstrap and migrate: all data goes."""
    from tools.local import db as ops

    if not yes:
        if not sys.stdin.isatty():
            refuse("db reset deletes all data; pass --yes to confirm", EXIT_USAGE)
        click.confirm("Delete all data in the embedded database?", abort=True)
    result = ops.start(on_apply=_announce, wipe=True)
    _report(result.migrations)
    out.print(result.cluster.url)


@db.command("migrate")
@database_url_option("Migrate this database instead of DATABASE_URL / the embedded cluster.")
def db_migrate(database_url: str | None) -> None:
    """Apply pending files of supabase/migrations, one transaction each, in order.

    Works against any database, a hosted Supabase project included (no local bootstrap is
    run). Applied versions are recorded in supabase_migrations.schema_migrations.
    """
    from tools.local import db as ops

    _report(ops.migrate_database(database_url, on_apply=_announce))


@db.command("url")
def db_url() -> None:
    """Print the DATABASE_URL every command would use."""
    out.print(settings.database().url)
