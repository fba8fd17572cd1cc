"""`intent gateway`: run the local gateway in the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import click
from aiohttp import web

from domain.errors import IntentError
from projections.application import Application
from tools import settings
from tools.cli.application import ApplicationError, load_application
from tools.cli.common import refuse
from tools.gateway.app import create_app
from tools.gateway.config import DEFAULT_PORT, GatewayConfig, GatewayError
from tools.gateway.shared import log_event
from tools.local import keys as local_keys


def ensure_port_free(host: str, port: int) -> None:
    """Refuse early (before any function starts) when the port is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def serve(config: GatewayConfig, on_ready: Callable[[], None],
                application: Application | None = None) -> None:
    """Start everything, call `on_ready`, serve until SIGINT/SIGTERM, then stop everything
    (the functions' processes by their PIDs) before returning. `application` is what the
    console's inspector folds aggregates with."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    ensure_port_free(config.host, config.port)
    runner = web.AppRunner(create_app(config, application=application), access_log=None,
                           handle_signals=False, shutdown_timeout=5)
    try:
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise GatewayError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from None
        on_ready()
        await stop.wait()
    finally:
        await runner.cleanup()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def banner(config: GatewayConfig) -> str:
    return "\n".join([
        "Intent local gateway (development only: the keys below are public)",
        f"API URL: {config.url}",
        f"anon key: {local_keys.anon_key()}",
        f"service_role key: {local_keys.service_role_key()}",
        f"JWT secret: {local_keys.LOCAL_JWT_SECRET}",
    ])


def application_or_none() -> Application | None:
    """The configured application, for the console's inspector; the gateway serves all the
    rest without one (said once in the log), so a broken or missing app does not stop it."""
    try:
        return load_application()
    except (ApplicationError, IntentError) as exc:
        log_event("no_application", logging.WARNING, reason=str(exc))
        return None


@click.command("gateway", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep 127.0.0.1: the keys are public).")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (Supabase's local API uses 54321).")
@click.option("--database-url", metavar="URL",
              help="The project's database (default: DATABASE_URL or the embedded cluster). "
                   "The gateway logs in to it as `authenticator`, as PostgREST does.")
@click.option("--functions-dir", type=click.Path(path_type=Path, file_okay=False),
              default=settings.REPO_ROOT / "supabase" / "functions", show_default=True,
              help="Edge functions: one <slug>/index.ts per function.")
@click.option("--config", "functions_config",
              type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="supabase/config.toml with [functions.<slug>] verify_jwt (default: the "
                   "config.toml beside the functions folder).")
def gateway(
    host: str, port: int, database_url: str | None, functions_dir: Path,
    functions_config: Path | None,
) -> None:
    """Serve Supabase's URLs for local development: /rest/v1, /functions/v1, /realtime/v1,
    /auth/v1.

    /rest/v1 reads tables and views of `public` and calls functions (rpc) in one
    transaction per request as the caller's role, like PostgREST; /functions/v1 runs each
    edge function under Deno and enforces verify_jwt; /realtime/v1 speaks Realtime's
    Phoenix channels (Broadcast, Presence, Postgres Changes of the tables in publication
    supabase_realtime under the subscriber's RLS, Broadcast from Database through
    realtime.messages; changes come by logical decoding from a temporary wal2json
    slot, so nothing is left in the database when the gateway stops); /auth/v1 signs
    users up and in as Supabase Auth does (a development stand-in: users and sessions in
    the local auth schema, the access-token hook of supabase/config.toml applied). Tokens
    must be signed with the local JWT secret (`intent token` mints them for scripts). Prints the
    URL and keys, logs one JSON line per request (and per Realtime connection, join and
    drop) on stderr, and runs until SIGTERM or Ctrl-C. Exit 3 when the port is
    taken, the database cannot be reached or Deno is missing.
    """
    from pump.observability import telemetry

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    # OTEL_* variables: the Realtime metrics (connections, deliveries, drops); off by default.
    shutdown_telemetry = telemetry.configure_from_env("gateway")
    try:
        url = database_url or settings.database().url
        config = GatewayConfig(database_url=url, host=host, port=port,
                               functions_dir=functions_dir, functions_config=functions_config)

        def ready() -> None:
            click.echo(banner(config))
            sys.stdout.flush()

        asyncio.run(serve(config, ready, application_or_none()))
    except (GatewayError, settings.SettingsError) as exc:
        refuse(str(exc))
    finally:
        shutdown_telemetry()
