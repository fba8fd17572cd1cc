"""`intent schemas ...`: the edge function's command catalogue, generated from the registry."""

from __future__ import annotations

import sys
from pathlib import Path

import click

EXIT_STALE = 1

_OUTPUT_OPTION = click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="The catalogue file (default: supabase/functions/_shared/command_schemas.json).",
)
_MIGRATIONS_OPTION = click.option(
    "--migrations-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Where to read the ingress's payload limit (default: supabase/migrations, or "
    "INTENT_MIGRATIONS_DIR).",
)


def _paths(output: Path | None, migrations_dir: Path | None) -> tuple[Path, Path]:
    from tools import settings
    from tools.json_schemas import SCHEMAS_PATH

    return (
        output if output is not None else SCHEMAS_PATH,
        migrations_dir if migrations_dir is not None else settings.migrations_dir(),
    )


def _check(output: Path | None, migrations_dir: Path | None) -> None:
    from domain.app import registry
    from tools.json_schemas import SchemaError, check

    path, folder = _paths(output, migrations_dir)
    try:
        result = check(path, registry, folder)
    except SchemaError as exc:
        click.echo(f"intent: {exc}", err=True)
        sys.exit(EXIT_STALE)
    if result.ok:
        click.echo(result.message)
        return
    click.echo(f"intent: {result.message}", err=True)
    sys.exit(EXIT_STALE)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def schemas() -> None:
    """The command catalogue the `command` edge function validates against.

    supabase/functions/_shared/command_schemas.json holds, per command type of
    domain.app.registry, the payload's JSON Schema, the target aggregate type, the payload
    field naming the aggregate and the roles allowed, plus the payload size limit of the SQL
    ingress (read from the migration defining public.submit_command). Change the registry,
    then run `./run schemas generate`; `./run test` fails while the file is stale.
    """


@schemas.command("generate")
@click.option("--check", "check_only", is_flag=True,
              help="Write nothing; exit 1 when the file is stale (same as `schemas check`).")
@_OUTPUT_OPTION
@_MIGRATIONS_OPTION
def generate_command(check_only: bool, output: Path | None, migrations_dir: Path | None) -> None:
    """Write the catalogue when the registry or the payload limit changed.

    The output is deterministic (sorted keys), so an unchanged registry writes nothing.
    Exit 0; exit 1 when a payload model cannot be expressed for the edge validator.
    """
    if check_only:
        _check(output, migrations_dir)
        return
    from domain.app import registry
    from tools.json_schemas import SchemaError, display_path, generate

    path, folder = _paths(output, migrations_dir)
    try:
        result = generate(path, registry, folder)
    except SchemaError as exc:
        click.echo(f"intent: {exc}", err=True)
        sys.exit(EXIT_STALE)
    if not result.written:
        click.echo(f"{display_path(path)} is current; nothing written")
        return
    click.echo(f"wrote {display_path(path)}")
    for line in result.differences:
        click.echo(line)


@schemas.command("check")
@_OUTPUT_OPTION
@_MIGRATIONS_OPTION
def check_command(output: Path | None, migrations_dir: Path | None) -> None:
    """Exit 1, naming what differs, when the catalogue does not match the registry.

    For CI: exit 0 and a one-line confirmation when it is current.
    """
    _check(output, migrations_dir)
