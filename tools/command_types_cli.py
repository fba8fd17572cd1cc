"""`intent commands ...`: the ingress's allow list, generated from the registry."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from domain.registry import Registry

EXIT_STALE = 1

MIGRATIONS_DIR_OPTION = click.option(
    "--migrations-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="The migrations folder (default: supabase/migrations, or INTENT_MIGRATIONS_DIR).",
)


def migrations_folder(migrations_dir: Path | None) -> Path:
    """The --migrations-dir given, else the project's (shared by the generators' CLIs)."""
    from tools import settings

    return migrations_dir if migrations_dir is not None else settings.migrations_dir()


def _app_registry() -> Registry:
    from domain.app import registry

    return registry


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it, else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def commands() -> None:
    """The command types the SQL ingress accepts, generated from the Python registry.

    `public.submit_command` accepts only the command types listed in intent.command_types,
    from the roles listed there. That table is filled by generated migrations
    (<YYYYMMDDHHMMSS>_command_types.sql) rendered from domain.app.registry: change the
    registry, then run `./run commands generate`.
    """


@commands.command("generate")
@MIGRATIONS_DIR_OPTION
def generate_command(migrations_dir: Path | None) -> None:
    """Write a new allow-list migration when the registry changed.

    Compares the registry with the newest generated migration (by the hash in its marker
    comment, and its content); when they differ, writes
    supabase/migrations/<UTC YYYYMMDDHHMMSS>_command_types.sql, else nothing. Exit 0.
    """
    from tools.command_types import differences, generate

    folder = migrations_folder(migrations_dir)
    result = generate(folder, _app_registry())
    state = result.status
    count = len(state.expected_rows)
    if result.written is None:
        latest = state.latest.path.name if state.latest else "?"
        click.echo(f"command types are current ({latest}, {count} command types); nothing written")
        return
    click.echo(f"wrote {_shown(result.written)} ({count} command types)")
    previous = state.latest
    if previous is None:
        click.echo("  (the first generated command-types migration)")
    elif previous.rows is not None:
        for line in differences(previous.rows, state.expected_rows):
            click.echo(line)
    click.echo("apply it with `./run db migrate`")


@commands.command("check")
@MIGRATIONS_DIR_OPTION
def check_command(migrations_dir: Path | None) -> None:
    """Exit 1 when the allow-list migrations do not match the registry.

    Looks at the newest *_command_types.sql. For CI: prints what differs and how to fix it
    (`./run commands generate`); exit 0 and a one-line confirmation when it is current.
    """
    from tools.command_types import check

    result = check(migrations_folder(migrations_dir), _app_registry())
    if result.ok:
        click.echo(result.message)
        return
    click.echo(f"intent: {result.message}", err=True)
    sys.exit(EXIT_STALE)
