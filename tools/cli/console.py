"""`intent console`: the console on its own, for a project the local gateway does not serve
(a hosted Supabase project): the page, its command catalogue, the projections and the fold
come from here, with this checkout's application; everything else (sign-in, commands,
events, read models, health) goes from the browser to the project, under its RLS."""

from __future__ import annotations

import asyncio
import signal
import sys

import click
from aiohttp import web

from tools.cli.common import refuse
from tools.cli.gateway import application_or_none, ensure_port_free
from tools.gateway.config import GatewayError
from tools.gateway.console import PREFIX, ConsoleModule, Project


async def _serve(host: str, port: int, module: ConsoleModule) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = web.Application()
    module.install(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        click.echo(f"Intent console: http://{host}:{port}{PREFIX}/")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command("console", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project-url", metavar="URL", envvar="SUPABASE_URL",
              help="The project the page signs in to by default (also SUPABASE_URL); "
                   "without it the page asks.")
@click.option("--anon-key", metavar="KEY", envvar="SUPABASE_ANON_KEY",
              help="That project's anon (publishable) key (also SUPABASE_ANON_KEY).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=54330, show_default=True,
              help="Port to listen on.")
def console(project_url: str | None, anon_key: str | None, host: str, port: int) -> None:
    """Serve the Intent console for a hosted project, until Ctrl-C.

    `intent dev` and `intent gateway` serve it already, at <API URL>/console, for the
    local stack. This serves the same page alone, with no database: give it the project's
    URL and anon key (never the service_role key; the page signs in as a user). The
    project needs Intent's migrations (`intent db migrate`), and what an operator sees
    there needs `intent operator grant` on its database. Exit 2 on bad options, 3 when
    the port is taken.
    """
    if (project_url is None) != (anon_key is None):
        raise click.UsageError("give both --project-url and --anon-key, or neither")
    project = Project(project_url.rstrip("/"), anon_key) if project_url and anon_key else None
    try:
        ensure_port_free(host, port)
    except GatewayError as exc:
        refuse(str(exc))
    asyncio.run(_serve(host, port, ConsoleModule(application_or_none(), project)))
