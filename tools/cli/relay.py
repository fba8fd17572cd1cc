"""`intent relay`: the broadcast relay, the process that writes the events' Realtime messages,
until SIGTERM or Ctrl-C."""

from __future__ import annotations

import click

from tools.cli.common import database_url_option, probe, refuse, resolve_database


@click.command("relay", context_settings={"help_option_names": ["-h", "--help"]})
@database_url_option("Relay from this database (default: DATABASE_URL or the embedded "
                     "cluster); connect as the runtime role, intent_worker.")
@click.option("--page", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Most events relayed in one transaction.")
@click.option("--idle", "idle_seconds", type=click.FloatRange(0.005, 5), default=0.05,
              show_default=True, metavar="SECONDS",
              help="Pause between calls when nothing was waiting: the longest an event waits "
              "before its messages are written.")
def relay(database_url: str | None, page: int, idle_seconds: float) -> None:
    """Broadcast every event to Supabase Realtime, until SIGTERM or Ctrl-C.

    Follows the global feed from its checkpoint (intent.checkpoints, consumer
    intent.realtime_relay) by calling intent.relay_broadcasts(): each call writes, for up
    to --page events, one realtime.messages row on intent:tenant:<tenant> and one on
    intent:aggregate:<tenant>:<type>:<id>, in feed order, and moves the checkpoint in the
    same transaction, so each event is broadcast exactly once; an event whose transaction
    commits late is held back until it can be sent in order, never skipped. It calls again
    at once after a full page, soon after a partial one, and after --idle when nothing
    waited. A failed call (e.g. a day without a realtime.messages partition on hosted
    Supabase) moves nothing: it is logged, noted on the checkpoint (`intent status`), and
    retried with backoff (0.5 s doubling to 15 s). A second relay is harmless: it waits its
    turn. Logs are JSON lines on stderr; OTEL_* variables turn on its span per call and
    its lag gauges. Exit 0 when stopped, 2 for bad usage, 3 when the database cannot be
    reached, lacks the relay (migrations not applied) or the role may not run it.
    """
    import asyncio

    from psycopg import OperationalError
    from psycopg_pool import PoolTimeout

    from pump.observability.logs import setup_logging
    from pump.processes import RelayUnusableError, run_relay

    url, shown = resolve_database(database_url)
    asyncio.run(probe(url, shown))  # unreachable: one line and exit 3, before a pool retries
    setup_logging("relay")
    try:
        run_relay(url, page=page, idle_seconds=idle_seconds)
    except RelayUnusableError as exc:
        refuse(f"{shown}: {exc}")
    except (OperationalError, PoolTimeout) as exc:
        refuse(f"the database {shown} is not usable: {' '.join(str(exc).split())}")
