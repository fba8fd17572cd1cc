"""`intent dev` as a developer runs it, for the tests of the whole local stack: free ports,
a state folder, the process with its output collected, the PIDs it started, a supabase-py
client configured from what it printed, and a clean stop that leaves nothing running."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from supabase import Client, ClientOptions, create_client

from tests.support.processes import INTENT, alive, ambient_env, public_tempdir, stop
from tools.local.cluster import LocalCluster, free_port
from tools.local.dev.stack import port_in_use

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


@contextlib.contextmanager
def state_dir() -> Iterator[Path]:
    """A state folder for `intent dev` (not there yet), in a folder removed afterwards."""
    with public_tempdir("intent-dev-") as parent:
        yield parent / "state"


@contextlib.contextmanager
def intent_dev(
    state: Path, ports: Ports, seen: set[int], *args: str, env: dict[str, str] | None = None
) -> Iterator[DevRun]:
    """`intent dev` on these ports and state dir. Whatever happens in the block, it and
    every PID it ever reported are stopped by PID afterwards, and its cluster too."""
    ambient = ambient_env("TEMPORAL_ADDRESS")
    proc = subprocess.Popen(
        [*INTENT, "dev", "--gateway-port", str(ports.gateway),
         "--db-port", str(ports.db), "--temporal-port", str(ports.temporal), *args],
        env={**ambient, **(env or {}), "INTENT_STATE_DIR": str(state)},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    seen.add(proc.pid)
    try:
        yield DevRun(proc)
    finally:
        stop(proc, STOP_SECONDS)
        for pid in seen:
            if alive(pid) and pid != os.getpid():
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
        "temporal", "worker", "pump", "projections", "sagas", "relay", "gateway"
    }
    return pids


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
    still = [pid for pid in pids if alive(pid)]
    assert still == [], f"still running after the stop: {still}\n{run.output()}"
    busy = [port for port in ports.all() if port_in_use(port)]
    assert busy == [], f"ports still in use after the stop: {busy}"
