"""`intent bench ...`."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks that print a table and write JSON, each beside a raw baseline."""
