"""The broadcast relay of `intent bench realtime`: `intent relay` as a process of its own on
the benchmark's database, as production runs it (its loop is not the subscribers')."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pump.readiness import READY_FILE_VARIABLE, ready_pid
from tools.bench.realtime.sockets import BenchRealtimeError
from tools.settings import REPO_ROOT

START_SECONDS = 60.0


@contextmanager
def relay_process(database_url: str) -> Iterator[int]:
    """`intent relay` until the block ends (then stopped by its PID); its PID once it is
    serving (it writes its ready file), or BenchRealtimeError with its log."""
    folder = Path(tempfile.mkdtemp(prefix="intent-bench-relay-"))
    ready, log = folder / "ready", folder / "relay.log"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env[READY_FILE_VARIABLE] = str(ready)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "relay", "--database-url", database_url],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + START_SECONDS
        while ready_pid(ready) != process.pid:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchRealtimeError(
                    f"the broadcast relay did not start (exit {process.poll()}):\n"
                    f"{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
