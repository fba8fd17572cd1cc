"""`intent ...` as a process of its own, as an operator runs it: one command run to its
end, or a long-running one (pump, worker, runner) that a test kills mid-run and starts
again; whether a PID is alive; and a state folder the `postgres` OS user can use."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tools.settings import REPO_ROOT

INTENT = (sys.executable, "-m", "tools.cli")


def ambient_env(*drop: str) -> dict[str, str]:
    """This process's environment without DATABASE_URL (tests name their database) and
    without the other variables named."""
    return {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", *drop}}


def run_intent(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`intent <args>` from the repository root, to its end; its output captured. `env`
    is the whole environment (default: `ambient_env()`)."""
    return subprocess.run(
        [*INTENT, *args], cwd=REPO_ROOT, env=dict(env) if env is not None else ambient_env(),
        capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent (or init) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(proc: subprocess.Popen[str], seconds: float = 20) -> None:
    """Stop a process of the test's own by its PID: SIGTERM, then SIGKILL if it is still
    running after `seconds`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def public_tempdir(prefix: str) -> Iterator[Path]:
    """A temporary folder others may enter (not pytest's tmp folder, which is private to
    root: PostgreSQL runs as the `postgres` OS user when the tests run as root); removed
    afterwards."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def intent_process(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`intent <args>` against `database_url` (plus `env`), its stderr piped for the test to
    read. Whatever the test did to it, it is stopped by its PID when the block ends: SIGTERM,
    then SIGKILL if it does not stop in 20 s."""
    proc = subprocess.Popen(
        [*INTENT, *args],
        env={**os.environ, **(env or {}), "DATABASE_URL": database_url},
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield proc
    finally:
        stop(proc)
