"""Start the stack's processes in order, wait for each to be healthy, watch them, restart
the ones that die (with backoff, giving up on one that keeps dying) and stop them all in
reverse order, each by its PID: SIGTERM, a bounded wait, then SIGKILL.

While the database is down (as a `database` callable reports it), the processes that need
it are not held to the give-up budget: one that dies then, or soon after the database is
back, is restarted without counting, and its restart waits until the database serves again.

Children run in process groups of their own, so a Ctrl-C typed in the terminal reaches only
`intent dev`, which then stops them in order; each child also gets SIGTERM from the kernel
if `intent dev` itself dies (PR_SET_PDEATHSIG), so none outlives it unnoticed.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pump.readiness import READY_FILE_VARIABLE, ready_pid
from tools.local.dev.stack import (
    DatabaseDown,
    DatabaseHealthy,
    DatabaseLost,
    DatabaseState,
    GiveUp,
    Health,
    LogLine,
    PortOpen,
    ProcessSpec,
    ReadyFile,
    RestartPolicy,
    TemporalReady,
)
from tools.settings import REPO_ROOT

Say = Callable[[str], None]
_PR_SET_PDEATHSIG = 1
# How often the supervisor looks at its children.
POLL_SECONDS = 0.2
TAIL_LINES = 12


class Outcome(enum.Enum):
    READY = "ready"  # every process is healthy
    STOPPED = "stopped"  # asked to stop (SIGINT / SIGTERM) while running
    INTERRUPTED = "interrupted"  # asked to stop before the stack was up
    FAILED = "failed"  # a process was given up on, or never became healthy


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when `intent dev` dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def describe_health(health: Health) -> str:
    match health:
        case LogLine(text=text):
            return f"the log line {text.strip()!r}"
        case ReadyFile(path=path):
            return f"its ready file {path}"
        case PortOpen(port=port):
            return f"127.0.0.1:{port} to accept connections"
        case TemporalReady(address=address, namespace=namespace):
            return f"Temporal at {address} to describe namespace {namespace!r}"


def tail(path: Path, offset: int, lines: int = TAIL_LINES) -> list[str]:
    """The last lines a process wrote to its log since `offset` (its start)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").rstrip("\n")
    return text.splitlines()[-lines:] if text else []


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def temporal_ready(health: TemporalReady) -> bool:
    host, _, port = health.address.rpartition(":")
    if not port_answers(int(port), host):
        return False
    try:
        answer = subprocess.run(
            [health.binary, "operator", "namespace", "describe", "--address", health.address,
             "--namespace", health.namespace, "--command-timeout", "3s"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return answer.returncode == 0


@dataclass
class Child:
    """A supervised process and its history."""

    spec: ProcessSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    log_offset: int = 0
    ready: bool = False
    ready_deadline: float = 0.0
    streak: int = 0
    excused: int = 0
    restart_at: float | None = None
    # Dead, and restarted only once the database serves again.
    waiting_for_database: bool = False
    starts: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def state(self) -> str:
        """One word or two for `intent status` (via dev.json)."""
        if self.waiting_for_database:
            return "waiting for postgres"
        if self.restart_at is not None:
            return "restarting"
        if self.proc is None:
            return "not started"
        return "ready" if self.ready else "starting"


class Supervisor:
    """Owns the children: every state change is reported through `say`, one line each."""

    def __init__(
        self,
        specs: Sequence[ProcessSpec],
        *,
        logs_dir: Path,
        say: Say,
        policy: RestartPolicy | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 15.0,
        on_change: Callable[[], None] | None = None,
        database: Callable[[], DatabaseState] | None = None,
    ) -> None:
        """`on_change` is called whenever a PID or a state changes (to record them).
        `database` is asked about once a second (at every look while it is down, and at
        once when a child dies) how the database is; DatabaseLost fails the stack."""
        self.children = [Child(spec, logs_dir / f"{spec.name}.log") for spec in specs]
        self._logs_dir = logs_dir
        self._say = say
        self._policy = policy or RestartPolicy()
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._on_change = on_change
        self._database = database
        self._next_database_check = 0.0
        self.database_serving = True
        # When the database was last seen down, and when it came back (monotonic).
        self._database_down_at: float | None = None
        self._database_back_at: float | None = None
        self.failure: str | None = None

    # -- running ------------------------------------------------------------------------

    def start_all(self, stopping: Callable[[], bool]) -> Outcome:
        """Start each child in order, waiting until it is healthy before the next."""
        for child in self.children:
            if stopping():
                return Outcome.INTERRUPTED
            self._check_database(time.monotonic())
            if self.failure is not None:
                return Outcome.FAILED
            if child.spec.needs_database and not self.database_serving:
                self._hold(child)  # started by tick() once the database is back
            else:
                self._spawn(child)
            while not child.ready:
                self.tick()
                if self.failure is not None:
                    return Outcome.FAILED
                if stopping():
                    return Outcome.INTERRUPTED
                time.sleep(POLL_SECONDS)
        return Outcome.READY

    def watch(self, stopping: Callable[[], bool]) -> Outcome:
        """Watch until asked to stop or until a child is given up on."""
        while not stopping():
            self.tick()
            if self.failure is not None:
                return Outcome.FAILED
            time.sleep(POLL_SECONDS)
        return Outcome.STOPPED

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children if c.proc is not None and c.alive()}

    def states(self) -> dict[str, str]:
        return {c.name: c.state() for c in self.children}

    def tick(self) -> None:
        """Look at the database when due (or when a child died: was it down?), then at every
        child once: restarts due, deaths, health, timeouts."""
        now = time.monotonic()
        died = any(c.proc is not None and c.proc.poll() is not None for c in self.children)
        if died or now >= self._next_database_check:
            self._check_database(now)
        for child in self.children:
            if self.failure is not None:
                return
            if child.waiting_for_database:
                if self.database_serving:
                    child.waiting_for_database = False
                    self._spawn(child)
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    self._spawn(child)
                continue
            if child.proc is None:
                continue  # not started yet (start_all goes in order)
            code = child.proc.poll()
            if code is not None:
                self._died(child, code)
            elif not child.ready:
                self._check_health(child)

    def _check_database(self, now: float) -> None:
        if self._database is None or self.failure is not None:
            return
        state = self._database()
        match state:
            case DatabaseLost(message=message):
                self._fail(message)
            case DatabaseDown():
                self._next_database_check = now  # every look until it is back
                self._database_down_at = now
                if self.database_serving:
                    self.database_serving = False
                    self._changed()
            case DatabaseHealthy():
                self._next_database_check = now + 1.0
                if not self.database_serving:
                    self.database_serving = True
                    self._database_back_at = now
                    self._changed()

    def _blameless(self, child: Child, now: float) -> bool:
        """Did this child die for the database's sake: while it was down, or within the
        policy's quick-run time of it coming back (connections broken by the outage)?"""
        if not child.spec.needs_database or self._database_down_at is None:
            return False
        return (not self.database_serving
                or now - self._database_down_at <= self._policy.quick_run)

    def _spawn(self, child: Child) -> None:
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        child.starts += 1
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with child.log_path.open("ab") as log:
            log.write(f"----- intent dev: start {child.starts} of {child.name} at {stamp}\n"
                      .encode())
            log.flush()
            child.log_offset = log.tell()
            try:
                env = {**os.environ, **child.spec.env}
                if isinstance(child.spec.health, ReadyFile):
                    child.spec.health.path.unlink(missing_ok=True)  # a previous start's
                    env[READY_FILE_VARIABLE] = str(child.spec.health.path)
                child.proc = subprocess.Popen(
                    child.spec.argv,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=env, cwd=REPO_ROOT,
                    process_group=0, preexec_fn=_die_with_parent,
                )
            except OSError as exc:
                child.proc = None
                self._fail(f"cannot start {child.name} ({child.spec.argv[0]}): {exc}")
                return
        child.started_at = time.monotonic()
        child.ready = False
        child.ready_deadline = child.started_at + self._ready_timeout
        again = f" (start {child.starts})" if child.starts > 1 else ""
        self._say(f"{child.name}: started{again}, pid {child.proc.pid}, "
                  f"log {child.log_path}")
        self._changed()

    def _hold(self, child: Child) -> None:
        child.waiting_for_database = True
        self._say(f"{child.name}: waiting for postgres before starting it")
        self._changed()

    def _check_health(self, child: Child) -> None:
        now = time.monotonic()
        if self._healthy(child):
            child.ready = True
            took = now - child.started_at
            self._say(f"{child.name}: ready in {took:.1f} s")
            self._changed()
            return
        if child.spec.needs_database:
            # It cannot get ready without the database: its time runs from the database's
            # return, not from its own start.
            if not self.database_serving:
                return
            if self._database_back_at is not None:
                child.ready_deadline = max(child.ready_deadline,
                                           self._database_back_at + self._ready_timeout)
        if now > child.ready_deadline:
            self._fail(
                f"{child.name} did not become healthy within {self._ready_timeout:.0f} s "
                f"(waited for {describe_health(child.spec.health)}); see {child.log_path}",
                tail(child.log_path, child.log_offset),
            )

    def _healthy(self, child: Child) -> bool:
        match child.spec.health:
            case LogLine(text=text):
                return any(text in line for line in tail(child.log_path, child.log_offset,
                                                         lines=10_000))
            case ReadyFile(path=path):
                return child.proc is not None and ready_pid(path) == child.proc.pid
            case PortOpen(port=port):
                return port_answers(port)
            case TemporalReady():
                return temporal_ready(child.spec.health)

    def _died(self, child: Child, code: int) -> None:
        now = time.monotonic()
        ran_for = now - child.started_at
        assert child.proc is not None
        pid = child.proc.pid
        child.proc = None
        child.ready = False
        last = tail(child.log_path, child.log_offset)
        blameless = self._blameless(child, now)
        decision = self._policy.decide(child.streak, ran_for, excused=child.excused,
                                       blameless=blameless)
        what = f"{child.name}: pid {pid} {describe_exit(code)} after {ran_for:.1f} s"
        if isinstance(decision, GiveUp):
            self._changed()
            self._fail(
                f"{what}; giving up on it: it died {decision.streak} times in a row, each "
                f"within {self._policy.quick_run:.0f} s of starting (log: {child.log_path})",
                last,
            )
            return
        child.streak, child.excused = decision.streak, decision.excused
        if blameless and not self.database_serving:
            child.waiting_for_database = True
            self._say(f"{what} (postgres is down; not counted); restarting it once "
                      "postgres is back")
        else:
            child.restart_at = now + decision.delay
            why = " (postgres was down; not counted)" if blameless else ""
            self._say(f"{what}{why}; restarting in {decision.delay:.1f} s")
        self._say_lines(last)
        self._changed()

    def _fail(self, message: str, lines: Sequence[str] = ()) -> None:
        self.failure = message
        self._say(message)
        self._say_lines(lines)

    def _say_lines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self._say(f"  | {line}")

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- stopping -----------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every child in reverse start order; pending restarts are dropped."""
        for child in reversed(self.children):
            child.restart_at = None
            child.waiting_for_database = False
            self._stop(child)
        self._changed()

    def _stop(self, child: Child) -> None:
        proc = child.proc
        if proc is None:
            return
        if proc.poll() is None:
            self._say(f"{child.name}: stopping pid {proc.pid} (SIGTERM)")
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                self._say(f"{child.name}: pid {proc.pid} did not stop within "
                          f"{self._stop_timeout:.0f} s; sending SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._say(f"{child.name}: stopped (pid {proc.pid} {describe_exit(proc.returncode)})")
        child.proc = None
