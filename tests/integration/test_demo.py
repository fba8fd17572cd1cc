"""`intent demo --short` end to end, as CI runs the main job: its own stack, every step, a
summary, and nothing left running afterwards."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import alive
from tools.settings import REPO_ROOT

pytestmark = pytest.mark.integration

STARTED = re.compile(r"(\w+): (?:created and )?started, pid (\d+)")


def test_the_demo_tells_every_step_and_stops_what_it_started() -> None:
    with tempfile.TemporaryDirectory(prefix="intent-demo-") as state:
        Path(state).chmod(0o755)  # the `postgres` OS user runs the cluster when we are root
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
        env["INTENT_STATE_DIR"] = state
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "demo", "--short"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, f"{stdout}\n{stderr}"
        for step in range(1, 8):
            assert f"\n{step}. " in stdout
        assert "each refreshed token carries its tenant" in stdout  # signed in, not minted
        assert "hydrated: snapshot at v" in stdout
        assert "refused" in stdout
        assert "demo done: every step came out right" in stdout
        # Every process the demo's stack ran (the stack's start lines name them) is gone.
        started = {name: int(pid) for name, pid in STARTED.findall(stderr)}
        assert {"postgres", "temporal", "worker", "pump", "gateway"} <= set(started), stderr
        running = {name: pid for name, pid in started.items() if alive(pid)}
        assert running == {}, f"still running: {running}"
