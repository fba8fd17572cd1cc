"""`intent pump`, `intent worker` and `intent sagas`: the long-running processes of the
command path, each until SIGTERM or Ctrl-C."""

from __future__ import annotations

import click

from tools import settings
from tools.cli.application import load_application
from tools.cli.common import refuse


@click.command("pump")
@click.option(
    "--direct",
    is_flag=True,
    help="Process batches in this process without Temporal: only for the benchmark's "
    "comparison and for tests.",
)
@click.option("--batch-limit", type=click.IntRange(1, 10_000), default=250, show_default=True,
              help="Most commands claimed into one batch.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Batches in flight at once from this pump.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 60), default=1.0,
              show_default=True, help="Seconds between polls when no NOTIFY arrives.")
@click.option("--linger", type=click.FloatRange(0, 5), default=0.2, show_default=True,
              help="With a batch in flight, seconds to wait after the last claim before the "
              "next, so that batches fill up under load (0: claim at once).")
@click.option("--sweep-after", type=click.FloatRange(0.1, 86_400), default=60.0,
              show_default=True,
              help="Seconds after which a dispatched, unfinished batch is dispatched again.")
@click.option("--attempt-timeout", type=click.FloatRange(0.5, 3600), default=30.0,
              show_default=True,
              help="Seconds one attempt at a batch may take before Temporal retries it "
              "(also how soon a batch whose worker died is picked up again).")
def pump(
    direct: bool,
    batch_limit: int,
    concurrency: int,
    poll_interval: float,
    linger: float,
    sweep_after: float,
    attempt_timeout: float,
) -> None:
    """Claim pending commands into batches and get them processed, until SIGTERM or Ctrl-C.

    Wakes on NOTIFY (with a poll as fallback), claims up to --batch-limit pending commands
    oldest first, never two batches for one aggregate at once, and starts one Temporal
    workflow per batch (workflow id from the batch id, so a repeated start is harmless).
    Batches left unfinished are dispatched again. Several pumps may run side by side.
    Temporal from TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE and
    INTENT_TASK_QUEUE (default intent-batches).
    """
    from datetime import timedelta

    from pump.batches.pump import PumpSettings
    from pump.observability.logs import setup_logging
    from pump.processes import run_pump

    setup_logging("pump")
    run_pump(
        load_application(),
        settings.database().url,
        PumpSettings(
            batch_limit=batch_limit,
            poll_interval=poll_interval,
            concurrency=concurrency,
            linger=linger,
            sweep_after=timedelta(seconds=sweep_after),
        ),
        direct=direct,
        attempt_timeout=attempt_timeout,
    )


@click.command("worker")
@click.option("--max-batches", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Batch activities run at once.")
def worker(max_batches: int) -> None:
    """Run the Temporal worker for batches and sagas, until SIGTERM or Ctrl-C.

    Each batch is decided and recorded in one database transaction; Temporal retries a
    failed attempt and, after the last one, records the batch's commands as failed. Saga
    workflows run on their own task queue (INTENT_SAGA_TASK_QUEUE, default intent-sagas).
    Temporal from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and INTENT_TASK_QUEUE.
    """
    from pump.observability.logs import setup_logging
    from pump.processes import run_worker

    setup_logging("worker")
    run_worker(load_application(), settings.database().url, max_activities=max_batches)


@click.command("sagas")
def sagas() -> None:
    """Run the saga router: follow the event feed and deliver events to saga instances.

    Events that start a saga start its workflow (one per instance, never twice); the others
    are signalled to the running instance. Delivery is at least once from the router's
    checkpoint; each saga applies an event once. INTENT_SAGA_TIMERS shortens saga timers,
    e.g. "orders.fulfilment.payment_deadline=30" (seconds). INTENT_SAGA_HISTORY_LIMIT (default
    2,000 events) is when a saga's workflow continues as new, keeping its state and timers.
    Temporal from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and INTENT_SAGA_TASK_QUEUE (default
    intent-sagas).
    """
    from pump.observability.logs import setup_logging
    from pump.processes import run_saga_router

    setup_logging("sagas")
    try:
        run_saga_router(load_application(), settings.database().url)
    except ValueError as exc:  # a malformed INTENT_SAGA_TIMERS or INTENT_SAGA_HISTORY_LIMIT
        refuse(str(exc))
