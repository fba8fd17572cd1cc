"""`intent docs cli`: the CLI reference (docs/cli.md), from the commands' own help."""

from __future__ import annotations

import click

from tools.cli.common import EXIT_FAILED, Group, err, refuse


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def docs() -> None:
    """Documentation generated from the code, so that it cannot drift."""


@docs.command("cli")
@click.option("--write", is_flag=True, help="Rewrite docs/cli.md.")
@click.option("--check", is_flag=True, help="Exit 1 when docs/cli.md is stale.")
@click.pass_context
def cli(ctx: click.Context, write: bool, check: bool) -> None:
    """Print the CLI reference (every command, its summary and options).

    docs/cli.md holds it; --write rewrites that file, --check exits 1 when it differs from
    what the commands say now (the tests run it). The commands are those of the command
    line this runs in (`intent`'s, all of them).
    """
    from tools.cli.reference import PATH, document

    if write and check:
        raise click.UsageError("--write and --check exclude each other")
    root = ctx.find_root().command
    assert isinstance(root, click.Group)
    wanted = document(root)
    if not (write or check):
        click.echo(wanted, nl=False)
        return
    found = PATH.read_text(encoding="utf-8") if PATH.is_file() else None
    if check:
        if wanted != found:
            refuse("the CLI reference in docs/cli.md is stale: run `intent docs cli --write`",
                   EXIT_FAILED)
        err.print("docs/cli.md matches the commands")
        return
    if wanted != found:
        PATH.write_text(wanted, encoding="utf-8")
        err.print("docs/cli.md: CLI reference rewritten")
    else:
        err.print("docs/cli.md: CLI reference already up to date")
