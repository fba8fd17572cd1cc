"""`intent projections ...`: the read models — their SQL, their runner, their drift."""

from __future__ import annotations

import click


@click.group()
def projections() -> None:
    """Read models declared in projections/: generate and check their migrations, run them,
    rebuild them, and compare a live database with their metadata."""


def _register() -> None:
    from tools.projection_runner_cli import rebuild, run
    from tools.projection_schema_cli import check, drift, generate, repair

    for command in (generate, check, drift, repair, run, rebuild):
        projections.add_command(command)


_register()
