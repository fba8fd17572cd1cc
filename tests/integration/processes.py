"""`intent ...` as a process of its own, as an operator runs it: for the tests that kill a
pump, a worker or a runner mid-run and start it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def intent_process(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`intent <args>` against `database_url` (plus `env`), its stderr piped for the test to
    read. Whatever the test did to it, it is stopped by its PID when the block ends: SIGTERM,
    then SIGKILL if it does not stop in 20 s."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", *args],
        env={**os.environ, **(env or {}), "DATABASE_URL": database_url},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
