"""`intent trace <correlation id>`: what one request caused, as a tree."""

from __future__ import annotations

import asyncio
from uuid import UUID

import click

from tools.cli.common import EXIT_FAILED, connect, database_url_option, refuse, resolve_database


@click.command("trace", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("correlation_id", type=click.UUID)
@click.option("--tenant", "tenant_id", type=click.UUID, metavar="UUID",
              help="Only this tenant's commands and events.")
@database_url_option("Read this database (default: DATABASE_URL or the embedded cluster).")
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
    from tools.checks.trace import Trace, dumps, read_trace, render

    url, shown = resolve_database(database_url)

    async def read() -> Trace:
        conn = await connect(url, shown)
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
        refuse(f"nothing carries correlation id {correlation_id}", EXIT_FAILED)
