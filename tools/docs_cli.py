"""`intent docs cli`: the README's CLI reference, from the commands' own help."""

from __future__ import annotations

import sys

import click

EXIT_STALE = 1
EXIT_ENVIRONMENT = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def docs() -> None:
    """Documentation generated from the code, so that it cannot drift."""


@docs.command("cli")
@click.option("--write", is_flag=True, help="Rewrite the block in README.md.")
@click.option("--check", is_flag=True, help="Exit 1 when README.md's block is stale.")
def cli(write: bool, check: bool) -> None:
    """Print the CLI reference table (every command, its summary and options).

    The README holds it between two marker comments; --write replaces that block,
    --check exits 1 when it differs from what the commands say now (the tests run it).
    Exit 3 when README.md has no such block.
    """
    from tools.cli import main
    from tools.cli_reference import ReferenceError, render, replace_block
    from tools.settings import REPO_ROOT

    if write and check:
        raise click.UsageError("--write and --check exclude each other")
    table = render(main)
    if not (write or check):
        click.echo(table, nl=False)
        return
    path = REPO_ROOT / "README.md"
    readme = path.read_text(encoding="utf-8")
    try:
        wanted = replace_block(readme, table)
    except ReferenceError as exc:
        click.echo(f"intent: {exc}", err=True)
        sys.exit(EXIT_ENVIRONMENT)
    if check:
        if wanted != readme:
            click.echo("intent: the CLI reference in README.md is stale: run "
                       "`intent docs cli --write`", err=True)
            sys.exit(EXIT_STALE)
        click.echo("README.md's CLI reference matches the commands", err=True)
        return
    if wanted != readme:
        path.write_text(wanted, encoding="utf-8")
        click.echo("README.md: CLI reference rewritten", err=True)
    else:
        click.echo("README.md: CLI reference already up to date", err=True)
