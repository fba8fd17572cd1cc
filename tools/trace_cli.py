"""`intent trace <correlation id>`: what one request caused, as a tree."""

from __future__ import annotations

import asyncio
import sys
from uuid import UUID

import click

EXIT_NOT_FOUND = 1


@click.command("trace", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("correlation_id", type=click.UUID)
@click.option("--tenant", "tenant_id", type=click.UUID, metavar="UUID",
              help="Only this tenant's commands and events.")
@click.option("--database-url", metavar="URL",
              help="Read this database (default: DATABASE_URL or the embedded cluster).")
@click.option("--json", "as_json", is_flag=True, help="Print the tree as JSON.")
def trace(correlation_id: UUID, tenant_id: UUID | None, database_url: str | None,
          as_json: bool) -> None:
    """Print the commands and events one request caused, as a causation tree.

    Reads the event store itself (works with tracing off): the commands and events
    whose metadata carry CORRELATION_ID, each hung under its cause (an event under its
    command, a saga's command under the event the saga reacted to). Trees never cross
    tenants. Exit 0 when something was found, 1 when nothing carries that id, 3 when
    the database cannot be reached.
    """
    from rich.console import Console

    from tools import cli_database
    from tools.trace import Trace, dumps, read_trace, render

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    url, shown = cli_database.resolve(database_url, err)

    async def read() -> Trace:
        conn = await cli_database.connect(url, shown, err)
        try:
            return await read_trace(conn, correlation_id, tenant_id=tenant_id)
        finally:
            await conn.close()

    found = asyncio.run(read())
    if as_json:
        click.echo(dumps(found), nl=False)
    elif found.roots:
        click.echo(f"correlation {correlation_id}: {found.nodes} command(s) and event(s)")
        for line in render(found):
            click.echo(line)
    if not found.roots:
        click.echo(f"intent: nothing carries correlation id {correlation_id}", err=True)
        sys.exit(EXIT_NOT_FOUND)
