"""`intent dev` as a developer runs it: the whole stack from one command, a command through
the gateway with supabase-py, a clean stop by SIGTERM, a second run that still has the data,
and a port in use refused before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from supabase import Client, ClientOptions, create_client

from tools.dev.stack import port_in_use
from tools.local_pg import LocalCluster, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings(
        r"ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning"
    ),
]

START_SECONDS = 240  # the whole stack on a busy 2-core machine, first run (initdb) included
STOP_SECONDS = 120


@dataclass
class Ports:
    gateway: int = field(default_factory=free_port)
    db: int = field(default_factory=free_port)
    temporal: int = field(default_factory=free_port)

    def all(self) -> list[int]:
        return [self.gateway, self.db, self.temporal]


@dataclass
class DevRun:
    """One `intent dev` process, its output collected line by line by a thread."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while True:
            for line in list(self.lines):
                found = re.search(pattern, line)
                if found:
                    return found
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader take the last lines
                pytest.fail(f"intent dev exited ({self.proc.returncode}) before "
                            f"{pattern!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} within {seconds} s:\n{self.output()}")
            time.sleep(0.1)

    def value(self, label: str) -> str:
        return self.wait_for(rf"^\s*{re.escape(label)}: (\S+)", 5).group(1)


def _alive(pid: int) -> bool:
    """Running, and not a zombie left for init to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextlib.contextmanager
def state_dir() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="intent-dev-"))
    parent.chmod(0o755)  # PostgreSQL runs as the `postgres` OS user when we are root
    try:
        yield parent / "state"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextlib.contextmanager
def intent_dev(
    state: Path, ports: Ports, seen: set[int], *args: str, env: dict[str, str] | None = None
) -> Iterator[DevRun]:
    """`intent dev` on these ports and state dir. Whatever happens in the block, it and
    every PID it ever reported are stopped by PID afterwards, and its cluster too."""
    ambient = {k: v for k, v in os.environ.items()
               if k not in {"DATABASE_URL", "TEMPORAL_ADDRESS"}}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.dev_cli", "--gateway-port", str(ports.gateway),
         "--db-port", str(ports.db), "--temporal-port", str(ports.temporal), *args],
        env={**ambient, **(env or {}), "INTENT_STATE_DIR": str(state)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    seen.add(proc.pid)
    try:
        yield DevRun(proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for pid in seen:
            if _alive(pid) and pid != os.getpid():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        cluster = LocalCluster(data_dir=state / "pg", port=ports.db)
        if cluster.initialised():
            cluster.stop()


def collect_pids(state: Path) -> set[int]:
    """Every PID the running stack has: dev, PostgreSQL, its children, the gateway's Deno
    function processes (from the gateway's log)."""
    record: dict[str, Any] = json.loads((state / "dev.json").read_text())
    pids = {record["dev"], record["postgres"], *record["processes"].values()}
    for line in (state / "logs" / "gateway.log").read_text().splitlines():
        if '"function_started"' in line:
            pids.add(json.loads(line)["pid"])
    assert set(record["processes"]) == {
        "temporal", "worker", "pump", "projections", "sagas", "gateway"
    }
    return pids


def until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.1)


def client(run: DevRun) -> Client:
    """supabase-py as an app would configure it from what dev printed."""
    token = run.value("user token")
    return create_client(run.value("API URL"), run.value("anon key"),
                         ClientOptions(headers={"Authorization": f"Bearer {token}"}))


def command_status(c: Client, command_id: str) -> dict[str, Any] | None:
    data: Any = c.rpc("command_status", {"command_id": command_id}).execute().data
    return dict(data) if data else None


def finished(status: dict[str, Any] | None) -> dict[str, Any] | None:
    done = status is not None and status["status"] in ("processed", "rejected", "failed")
    return status if done else None


def stop_cleanly(run: DevRun, pids: set[int], ports: Ports) -> None:
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(timeout=STOP_SECONDS) == 0, run.output()
    still = [pid for pid in pids if _alive(pid)]
    assert still == [], f"still running after the stop: {still}\n{run.output()}"
    busy = [port for port in ports.all() if port_in_use(port)]
    assert busy == [], f"ports still in use after the stop: {busy}"


def test_the_stack_processes_a_command_stops_cleanly_and_resumes_with_its_data() -> None:
    ports, seen = Ports(), set[int]()
    item = str(uuid4())
    with state_dir() as state:
        with intent_dev(state, ports, seen) as run:
            run.wait_for(r"dev: all processes are ready", START_SECONDS)
            pids = collect_pids(state)
            seen |= pids
            c = client(run)
            submitted: Any = c.rpc("submit_command", {
                "command_type": "inventory.register_item",
                "payload": {"item_id": item, "sku": "DEV-1", "name": "Dev widget"},
            }).execute().data
            command_id = str(submitted["command_id"])
            status = until(lambda: finished(command_status(c, command_id)), 60,
                           "the command finished")
            assert status["status"] == "processed", status
            rows = c.table("stock_levels").select("sku").eq("item_id", item).execute().data
            assert rows == [{"sku": "DEV-1"}]
            stop_cleanly(run, pids, ports)
            assert not (state / "dev.json").exists()

        # Quiet processes (no "running" lines at this level) are still seen to be ready.
        quiet = {"INTENT_LOG_LEVEL": "warning"}
        with intent_dev(state, ports, seen, env=quiet) as again:
            again.wait_for(r"dev: all processes are ready", START_SECONDS)
            assert re.search(r"postgres: started, pid \d+; 0 migration", again.output())
            pids = collect_pids(state)
            seen |= pids
            c = client(again)
            kept = command_status(c, command_id)
            assert kept is not None
            assert kept["status"] == "processed"
            stop_cleanly(again, pids, ports)


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    ports, seen = Ports(), set[int]()
    with state_dir() as state, socket.socket() as taken:
        taken.bind(("127.0.0.1", ports.temporal))
        taken.listen()
        with intent_dev(state, ports, seen) as run:
            assert run.proc.wait(timeout=60) == 3
            time.sleep(0.2)  # let the reader take the last lines
            message = run.output()
            assert f"port {ports.temporal} on 127.0.0.1 (Temporal) is already in use" in message
            assert "--temporal-port" in message
            assert "INTENT_TEMPORAL_PORT" in message
            assert "nothing was started" in message
        assert not (state / "pg").exists()
        assert not (state / "logs").exists()
        assert not port_in_use(ports.gateway)
        assert not port_in_use(ports.db)


def test_a_process_that_keeps_dying_is_given_up_on_and_everything_stops() -> None:
    """The saga router refuses a malformed INTENT_SAGA_TIMERS at every start (exit 3)."""
    ports, seen = Ports(), set[int]()
    bad_timers = {"INTENT_SAGA_TIMERS": "not-a-timer"}
    with state_dir() as state, intent_dev(state, ports, seen, env=bad_timers) as run:
        assert run.proc.wait(timeout=START_SECONDS) == 1, run.output()
        time.sleep(0.2)  # let the reader take the last lines
        out = run.output()
        started = {int(pid) for pid in re.findall(r": started.*?, pid (\d+)", out)}
        seen |= started
        assert len(re.findall(r"sagas: started", out)) == 5
        assert re.search(r"sagas: pid \d+ exited with code 3 after [\d.]+ s; "
                         r"giving up on it: it died 5 times in a row", out), out
        assert "INTENT_SAGA_TIMERS: 'not-a-timer'" in out
        assert "gateway: started" not in out  # it never got that far
        assert "postgres: stopped" in out
        still = [pid for pid in started if _alive(pid)]
        assert still == [], f"still running: {still}"
        assert [p for p in ports.all() if port_in_use(p)] == []
