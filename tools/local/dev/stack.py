"""The plan of the local stack: settings, processes in start order, health checks, the
restart policy and the port checks. Nothing here starts anything, so it is unit-testable."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from projections.roles import RUNTIME_ROLE
from pump.temporal.settings import DEV_SERVER_TUNING
from tools.settings import REPO_ROOT, local_url

DEFAULT_GATEWAY_PORT = 54321
DEFAULT_DB_PORT = 54322
DEFAULT_TEMPORAL_PORT = 7233

# The demo tenant and user whose token `intent dev` prints: fixed, so that a client
# configured once keeps seeing the same data across runs.
DEMO_TENANT_ID = UUID("d0d0d0d0-0000-4000-8000-000000000001")
DEMO_USER_ID = UUID("d0d0d0d0-0000-4000-8000-000000000002")
# A day: long enough for a working session, short enough to remind that it is a token.
DEMO_TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class LogLine:
    """Healthy once the process has written this text to its log (its own "running")."""

    text: str


@dataclass(frozen=True)
class ReadyFile:
    """Healthy once the process has written its pid to this file (pump.readiness: it does
    so when it starts serving, at any log level). The supervisor names the file in the
    child's INTENT_READY_FILE and removes it before every start."""

    path: Path


@dataclass(frozen=True)
class PortOpen:
    """Healthy once 127.0.0.1:port accepts a TCP connection."""

    port: int


@dataclass(frozen=True)
class TemporalReady:
    """Healthy once the frontend describes the namespace, asked with the `temporal` CLI (not
    the Python SDK, whose runtime threads would make forking the next children unsafe)."""

    address: str
    namespace: str
    binary: str


Health = LogLine | ReadyFile | PortOpen | TemporalReady


@dataclass(frozen=True)
class ProcessSpec:
    """One child process of the stack: how to run it and how it shows it is up."""

    name: str
    argv: tuple[str, ...]
    health: Health
    env: Mapping[str, str] = field(default_factory=dict)
    # It cannot work without PostgreSQL: while the database is down, its deaths are not
    # counted against it and its restart waits until the database is back.
    needs_database: bool = False


@dataclass(frozen=True)
class PortOption:
    """A port the stack listens on, with the option and variable that change it."""

    what: str
    port: int
    option: str
    envvar: str


@dataclass(frozen=True)
class DevConfig:
    """Everything the stack needs to know, resolved from options and the environment."""

    state_dir: Path
    gateway_port: int = DEFAULT_GATEWAY_PORT
    db_port: int = DEFAULT_DB_PORT
    temporal_port: int = DEFAULT_TEMPORAL_PORT
    temporal_namespace: str = "default"
    python: str = sys.executable
    temporal_binary: Path = Path(sys.executable).parent / "temporal"
    deno: Path = REPO_ROOT / "node_modules" / ".bin" / "deno"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def temporal_dir(self) -> Path:
        return self.state_dir / "temporal"

    @property
    def temporal_db(self) -> Path:
        return self.temporal_dir / "temporal.db"

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "pg"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "dev.json"

    @property
    def database_url(self) -> str:
        return local_url(self.db_port)

    @property
    def runtime_url(self) -> str:
        """What the pump, the worker, the runner, the router and the relay connect as: the
        runtime's least-privilege role (supabase/migrations/*_runtime_role.sql), not
        `postgres`."""
        return local_url(self.db_port, user=RUNTIME_ROLE)

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def log_file(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def ports(self) -> list[PortOption]:
        return [
            PortOption("the database", self.db_port, "--db-port", "INTENT_DB_PORT"),
            PortOption("Temporal", self.temporal_port, "--temporal-port",
                       "INTENT_TEMPORAL_PORT"),
            PortOption("the gateway", self.gateway_port, "--gateway-port",
                       "INTENT_GATEWAY_PORT"),
        ]

    def child_env(self) -> dict[str, str]:
        """What every child gets on top of dev's own environment: the stack's addresses, so
        that each `intent` command finds the same database and Temporal."""
        return {
            "DATABASE_URL": self.database_url,
            "INTENT_DB_PORT": str(self.db_port),
            "INTENT_STATE_DIR": str(self.state_dir),
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": self.temporal_namespace,
            # Not the developer's Temporal profile (~/.config/temporalio/temporal.toml): its
            # API key or TLS would be applied to the stack's own plain-text dev server.
            "TEMPORAL_CONFIG_FILE": os.devnull,
            "TEMPORAL_PROFILE": "",
            "PYTHONUNBUFFERED": "1",
        }


def temporal_argv(config: DevConfig) -> tuple[str, ...]:
    """The dev server, tuned as the tests and benchmarks run it, its data kept in a file."""
    argv = [
        str(config.temporal_binary), "server", "start-dev", "--headless",
        "--ip", "127.0.0.1", "--port", str(config.temporal_port),
        "--db-filename", str(config.temporal_db),
        *DEV_SERVER_TUNING,
    ]
    if config.temporal_namespace != "default":  # "default" always exists
        argv += ["--namespace", config.temporal_namespace]
    return tuple(argv)


def plan(config: DevConfig) -> list[ProcessSpec]:
    """The child processes in start order (stopped in the reverse order). PostgreSQL is not
    among them: pg_ctl runs it detached, and `intent db start` may have started it already."""
    env = config.child_env()

    runtime = env | {"DATABASE_URL": config.runtime_url}

    def intent(*args: str) -> tuple[str, ...]:
        return (config.python, "-m", "tools.cli", *args)

    def ready(name: str) -> ReadyFile:
        return ReadyFile(config.state_dir / "ready" / name)

    return [
        # Temporal keeps its own data (SQLite): it does not need PostgreSQL.
        ProcessSpec("temporal", temporal_argv(config),
                    TemporalReady(config.temporal_address, config.temporal_namespace,
                                  str(config.temporal_binary)), env),
        # Each command writes its ready file once it is connected and serving.
        ProcessSpec("worker", intent("worker"), ready("worker"), runtime, needs_database=True),
        ProcessSpec("pump", intent("pump"), ready("pump"), runtime, needs_database=True),
        ProcessSpec("projections", intent("projections", "run"), ready("projections"),
                    runtime, needs_database=True),
        ProcessSpec("sagas", intent("sagas"), ready("sagas"), runtime, needs_database=True),
        ProcessSpec("relay", intent("relay"), ready("relay"), runtime, needs_database=True),
        ProcessSpec("gateway",
                    intent("gateway", "--port", str(config.gateway_port),
                           "--database-url", config.database_url),
                    PortOpen(config.gateway_port), env, needs_database=True),
    ]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (or on every address), so that a server of
    ours could not bind it. SO_REUSEADDR, as servers set it: a closed connection's
    TIME_WAIT does not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_problems(ports: Sequence[PortOption], *, ours: frozenset[int] = frozenset()) -> list[str]:
    """One message per port that is taken (or listed twice), naming the option and variable
    that change it; `ours` are ports already served by this stack's own PostgreSQL."""
    problems: list[str] = []
    seen: dict[int, PortOption] = {}
    for option in ports:
        if option.port in seen:
            other = seen[option.port]
            problems.append(
                f"port {option.port} is given both to {other.what} ({other.option}) and to "
                f"{option.what} ({option.option}); choose another with {option.option} or "
                f"{option.envvar}"
            )
            continue
        seen[option.port] = option
        if option.port not in ours and port_in_use(option.port):
            problems.append(
                f"port {option.port} on 127.0.0.1 ({option.what}) is already in use; stop "
                f"what listens there or choose another port with {option.option} or "
                f"{option.envvar}"
            )
    return problems


@dataclass(frozen=True)
class Restart:
    """Start the process again after `delay` seconds; `streak` quick failures so far (the
    give-up budget), `excused` deaths in a row that did not count (the database was down)."""

    delay: float
    streak: int
    excused: int = 0


@dataclass(frozen=True)
class GiveUp:
    """Stop trying: the process failed `streak` times in a row, each soon after starting."""

    streak: int


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff for a child that died; a run of `quick_run` seconds or more counts
    as having worked, so an occasional crash is always restarted, while one that keeps
    dying at once is given up on after `max_quick_failures` tries."""

    first_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 15.0
    quick_run: float = 10.0
    max_quick_failures: int = 5

    def decide(
        self, streak: int, ran_for: float, *, excused: int = 0, blameless: bool = False
    ) -> Restart | GiveUp:
        """After a death: `streak` is the count of quick failures just before this one,
        `ran_for` how long this run lasted (seconds). `blameless`: it died while what it
        needs was down (the database), so it is restarted, backing off on `excused` (the
        blameless deaths just before this one), and the give-up budget is left as it was:
        a process must not be given up on for an outage it cannot help."""
        if ran_for >= self.quick_run:
            return Restart(delay=self.first_delay, streak=0)
        if blameless:
            return Restart(delay=self._backoff(excused + 1), streak=streak, excused=excused + 1)
        streak += 1
        if streak >= self.max_quick_failures:
            return GiveUp(streak)
        return Restart(delay=self._backoff(streak), streak=streak)

    def _backoff(self, failures: int) -> float:
        return min(self.max_delay, self.first_delay * self.factor ** (failures - 1))


@dataclass(frozen=True)
class DatabaseHealthy:
    """PostgreSQL serves (its postmaster runs and says it is ready)."""

    pid: int


@dataclass(frozen=True)
class DatabaseDown:
    """PostgreSQL is not serving, and is being brought back (`state`: "restarting" when
    `intent dev` restarts it, "waiting" when it waits for whoever started it)."""

    state: str


@dataclass(frozen=True)
class DatabaseLost:
    """PostgreSQL could not be brought back: the stack fails with this message."""

    message: str


DatabaseState = DatabaseHealthy | DatabaseDown | DatabaseLost
