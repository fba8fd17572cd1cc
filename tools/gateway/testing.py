"""Run the gateway as its own process for tests (and end-to-end checks), as a user runs it.

A separate process keeps the gateway's event loop, signals and children apart from the
test's, and exercises the real command line. It is stopped by its PID; the gateway then
stops the functions' processes by theirs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.local.cluster import free_port
from tools.settings import REPO_ROOT


class GatewayStartError(Exception):
    """The gateway process did not come up; the message carries its output."""


@dataclass
class RunningGateway:
    url: str
    pid: int
    stdout_path: Path
    stderr_path: Path
    # The whole log, kept when the gateway has stopped (its folder is removed then).
    final_events: list[dict[str, Any]] = field(default_factory=list)

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other lines are skipped)."""
        events: list[dict[str, Any]] = []
        for line in self.stderr_path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                events.append(record)
        return events


def _output(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@contextmanager
def running_gateway(
    database_url: str,
    *,
    functions_dir: Path | None = None,
    functions_config: Path | None = None,
    port: int | None = None,
    startup_seconds: float = 120,
) -> Iterator[RunningGateway]:
    """`intent gateway ...` (as `python -m tools.cli gateway`, the way `intent dev` starts it)
    on 127.0.0.1 and a free port, until the block ends."""
    port = port or free_port()
    folder = Path(tempfile.mkdtemp(prefix="intent-gateway-"))
    stdout_path, stderr_path = folder / "stdout.log", folder / "stderr.log"
    empty = folder / "no-functions"
    empty.mkdir()
    command = [
        sys.executable, "-m", "tools.cli", "gateway",
        "--port", str(port),
        "--database-url", database_url,
        "--functions-dir", str(functions_dir or empty),
    ]
    if functions_config is not None:
        command += ["--config", str(functions_config)]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=err, env=env)
    running: RunningGateway | None = None
    try:
        deadline = time.monotonic() + startup_seconds
        url = None
        while url is None:
            for line in _output(stdout_path).splitlines():
                if line.startswith("API URL: "):
                    url = line.removeprefix("API URL: ").strip()
            if url is not None:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise GatewayStartError(
                    f"the gateway did not start (exit {process.poll()}):\n"
                    f"{_output(stdout_path)}\n{_output(stderr_path)}")
            time.sleep(0.05)
        running = RunningGateway(url, process.pid, stdout_path, stderr_path)
        yield running
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        if running is not None:
            running.final_events = running.log_events()
        shutil.rmtree(folder, ignore_errors=True)
