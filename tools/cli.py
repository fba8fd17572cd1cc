"""The `intent` command line (also `./run ...`).

Exit codes a script can rely on: 0 done, 1 the work failed (a test, a check, a migration),
2 bad usage, 3 the environment is not usable (a missing program, a port in use, a bad
setting).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from rich.console import Console

from pump.temporal_settings import TemporalSettingsError
from tools import settings
from tools.local_pg import ClusterError
from tools.migrations import Migration, MigrationError, MigrationReport

EXIT_FAILED = 1
EXIT_ENVIRONMENT = 3

# Soft wrap: a long message stays one line, for logs and for scripts that grep it.
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])


def _friendly_errors(fn: F) -> F:
    """Turn our own errors into one clear line and the documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ClusterError, settings.SettingsError, TemporalSettingsError) as exc:
            err.print(f"[red]intent:[/red] {exc}")
            sys.exit(EXIT_ENVIRONMENT)
        except MigrationError as exc:
            err.print(f"[red]intent: migration failed:[/red] {exc}")
            sys.exit(EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="intent")
def main() -> None:
    """Intent: an event-sourced CQRS backend for Supabase.

    Every command reads its database from DATABASE_URL, or else uses the embedded cluster
    under .intent/pg on 127.0.0.1:$INTENT_DB_PORT (default 54322).
    """


# -- db ---------------------------------------------------------------------------------


@main.group()
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
@_friendly_errors
def db_start() -> None:
    """Initialise (first time) and start the embedded cluster, then bootstrap and migrate.

    Prints the DATABASE_URL on standard output, so `export DATABASE_URL=$(./run db start)`
    works. Runs as the `postgres` OS user when invoked as root.
    """
    from tools import db as ops

    result = ops.start(on_apply=_announce)
    state = "created and started" if result.created else "running"
    err.print(f"PostgreSQL {state} on 127.0.0.1:{result.cluster.port} ({result.cluster.data_dir})")
    _report(result.migrations)
    out.print(result.cluster.url)


@db.command("stop")
@_friendly_errors
def db_stop() -> None:
    """Stop the embedded cluster (the server its postmaster.pid names); keeps the data."""
    from tools import db as ops

    err.print("stopped" if ops.stop() else "not running")


@db.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask; needed when there is no terminal.")
@_friendly_errors
def db_reset(yes: bool) -> None:
    """Drop the embedded cluster's database, recreate it, bootstrap and migrate: all data goes."""
    from tools import db as ops

    if not yes:
        if not sys.stdin.isatty():
            err.print("intent: db reset deletes all data; pass --yes to confirm")
            sys.exit(2)
        click.confirm("Delete all data in the embedded database?", abort=True)
    result = ops.start(on_apply=_announce, wipe=True)
    _report(result.migrations)
    out.print(result.cluster.url)


@db.command("migrate")
@click.option(
    "--database-url",
    metavar="URL",
    help="Migrate this database instead of DATABASE_URL / the embedded cluster.",
)
@_friendly_errors
def db_migrate(database_url: str | None) -> None:
    """Apply pending files of supabase/migrations, one transaction each, in order.

    Works against any database, a hosted Supabase project included (no local bootstrap is
    run). Applied versions are recorded in supabase_migrations.schema_migrations.
    """
    from tools import db as ops

    _report(ops.migrate_database(database_url, on_apply=_announce))


@db.command("url")
@_friendly_errors
def db_url() -> None:
    """Print the DATABASE_URL every command would use."""
    out.print(settings.database().url)


# -- pump -------------------------------------------------------------------------------


@main.command("pump")
@click.option(
    "--direct",
    is_flag=True,
    help="Process batches in this process without Temporal: only for the benchmark's "
    "comparison and for tests.",
)
@click.option("--batch-limit", type=click.IntRange(1, 10_000), default=250, show_default=True,
              help="Most commands claimed into one batch.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Batches in flight at once from this pump.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=1.0,
              show_default=True, help="Seconds between polls when no NOTIFY arrives.")
@click.option("--linger", type=click.FloatRange(0, 5), default=0.2, show_default=True,
              help="With a batch in flight, seconds to wait after the last claim before the "
              "next, so that batches fill up under load (0: claim at once).")
@click.option("--sweep-after", type=click.FloatRange(0.1, 86_400), default=60.0,
              show_default=True,
              help="Seconds after which a dispatched, unfinished batch is dispatched again.")
@click.option("--attempt-timeout", type=click.FloatRange(0.5, 3600), default=30.0,
              show_default=True,
              help="Seconds one attempt at a batch may take before Temporal retries it "
              "(also how soon a batch whose worker died is picked up again).")
@_friendly_errors
def pump_command(
    direct: bool,
    batch_limit: int,
    concurrency: int,
    poll_interval: float,
    linger: float,
    sweep_after: float,
    attempt_timeout: float,
) -> None:
    """Claim pending commands into batches and get them processed, until SIGTERM or Ctrl-C.

    Wakes on NOTIFY (with a poll as fallback), claims up to --batch-limit pending commands
    oldest first, never two batches for one aggregate at once, and starts one Temporal
    workflow per batch (workflow id from the batch id, so a repeated start is harmless).
    Batches left unfinished are dispatched again. Several pumps may run side by side.
    Temporal from TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE and
    INTENT_TASK_QUEUE (default intent-batches).
    """
    from datetime import timedelta

    from pump.logs import setup_logging
    from pump.pump import PumpSettings
    from pump.runner import run_pump

    setup_logging("pump")
    run_pump(
        settings.database().url,
        PumpSettings(
            batch_limit=batch_limit,
            poll_interval=poll_interval,
            concurrency=concurrency,
            linger=linger,
            sweep_after=timedelta(seconds=sweep_after),
        ),
        direct=direct,
        attempt_timeout=attempt_timeout,
    )


@main.command("worker")
@click.option("--max-batches", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Batch activities run at once.")
@_friendly_errors
def worker_command(max_batches: int) -> None:
    """Run the Temporal worker for batches and sagas, until SIGTERM or Ctrl-C.

    Each batch is decided and recorded in one database transaction; Temporal retries a
    failed attempt and, after the last one, records the batch's commands as failed. Saga
    workflows run on their own task queue (INTENT_SAGA_TASK_QUEUE, default intent-sagas).
    Temporal from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and INTENT_TASK_QUEUE.
    """
    from pump.logs import setup_logging
    from pump.runner import run_worker

    setup_logging("worker")
    run_worker(settings.database().url, max_activities=max_batches)


@main.command("sagas")
@_friendly_errors
def sagas_command() -> None:
    """Run the saga router: follow the event feed and deliver events to saga instances.

    Events that start a saga start its workflow (one per instance, never twice); the others
    are signalled to the running instance. Delivery is at least once from the router's
    checkpoint; each saga applies an event once. INTENT_SAGA_TIMERS shortens saga timers,
    e.g. "orders.fulfilment.payment_deadline=30" (seconds). INTENT_SAGA_HISTORY_LIMIT (default
    2,000 events) is when a saga's workflow continues as new, keeping its state and timers.
    Temporal from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and INTENT_SAGA_TASK_QUEUE (default
    intent-sagas).
    """
    from pump.logs import setup_logging
    from pump.runner import run_saga_router

    setup_logging("sagas")
    try:
        run_saga_router(settings.database().url)
    except ValueError as exc:  # a malformed INTENT_SAGA_TIMERS or INTENT_SAGA_HISTORY_LIMIT
        err.print(f"[red]intent:[/red] {exc}")
        sys.exit(EXIT_ENVIRONMENT)


# -- test -------------------------------------------------------------------------------


@main.command("test", context_settings={"ignore_unknown_options": True})
@click.option("--no-lint", is_flag=True, help="Skip ruff and mypy (for a quick re-run).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def test(no_lint: bool, pytest_args: tuple[str, ...]) -> None:
    """Run the whole suite: ruff, mypy, then pytest (unit, integration, pgTAP).

    Integration tests start their own throwaway PostgreSQL and stop it afterwards; they never
    touch .intent/pg. Extra arguments go to pytest, e.g. `./run test -k feed -x`.
    """
    root = settings.REPO_ROOT
    bin_dir = os.path.dirname(sys.executable)
    steps: list[tuple[str, list[str]]] = []
    if not no_lint:
        steps += [
            ("ruff", [os.path.join(bin_dir, "ruff"), "check", "."]),
            ("mypy", [os.path.join(bin_dir, "mypy")]),
        ]
    steps.append(("pytest", [sys.executable, "-m", "pytest", *pytest_args]))
    for name, command in steps:
        err.print(f"[bold]== {name}[/bold]")
        code = subprocess.call(command, cwd=root)
        if code != 0:
            err.print(f"[red]intent: {name} failed (exit {code})[/red]")
            sys.exit(EXIT_FAILED)


def _register_subcommands() -> None:
    from tools.bench.cli import bench
    from tools.command_types_cli import commands
    from tools.demo_cli import demo
    from tools.dev_cli import dev
    from tools.docs_cli import docs
    from tools.gateway.cli import gateway
    from tools.projections_cli import projections
    from tools.rls_cli import rls
    from tools.schemas_cli import schemas
    from tools.snapshots_cli import snapshots
    from tools.status_cli import status
    from tools.token_cli import token
    from tools.trace_cli import trace

    for group in (bench, commands, demo, dev, docs, gateway, projections, rls, schemas,
                  snapshots, status, token, trace):
        main.add_command(group)


_register_subcommands()

if __name__ == "__main__":
    main()
