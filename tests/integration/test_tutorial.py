"""docs/tutorial.md, followed word for word in a copy of the repository: its shell blocks run
in order (in bash, from the copy's root, stopping at the first failure), its `file=` blocks
replace that file, and its `keep-running` block (`./run dev`) is started in the background
and waited for until it prints its `until=` line. The last command, `node watch.mjs`, sends
a command through the gateway and exits 0 only once Realtime has shown its row and the SLA
saga's escalation. The stack gets free ports and a state folder of its own (through the
environment variables `intent dev` reads), and is stopped by its PID at the end."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dev import STOP_SECONDS, DevRun, Ports
from tests.support.docs import REPO, Block, fenced_blocks
from tests.support.processes import alive, public_tempdir, stop
from tests.support.repo_copy import RepoCopy, repo_copy
from tools.local.cluster import LocalCluster

pytestmark = pytest.mark.integration

TUTORIAL = REPO / "docs" / "tutorial.md"
READY_SECONDS = 300  # the whole stack, first start (initdb, migrations) on a busy machine
STEP_SECONDS = 600


def steps() -> list[Block]:
    return [block for block in fenced_blocks(TUTORIAL)
            if block.file is not None or block.language in {"bash", "sh"}]


def test_the_tutorial_has_the_steps_this_test_follows() -> None:
    found = steps()
    files = {block.file for block in found}
    assert {"domain/tickets/ticket.py", "domain/tickets/sla.py", "watch.mjs",
            "projections/tickets_by_assignee.py"} <= files
    commands = "".join(block.code for block in found if block.file is None)
    assert "./run new slice tickets" in commands
    assert "./run new projection tickets_by_assignee --slice tickets" in commands
    assert "node watch.mjs" in commands.splitlines()[-1]
    assert [b.options.get("until") for b in found if "keep-running" in b.options] == ["API URL:"]


def start_in_background(block: Block, copy: RepoCopy, env: dict[str, str]) -> DevRun:
    """A keep-running block, its output collected line by line; ready once it prints the
    block's `until=` line."""
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {block.code.strip()}"], cwd=copy.root, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    run = DevRun(proc)
    run.wait_for(re.escape(block.options["until"]), READY_SECONDS)
    return run


@contextlib.contextmanager
def stack_env(copy: RepoCopy) -> Iterator[tuple[dict[str, str], Path]]:
    ports = Ports()
    with public_tempdir("intent-tutorial-") as parent:
        state = parent / "state"
        yield copy.env(INTENT_GATEWAY_PORT=str(ports.gateway), INTENT_DB_PORT=str(ports.db),
                       INTENT_TEMPORAL_PORT=str(ports.temporal),
                       INTENT_STATE_DIR=str(state)), state
        cluster = LocalCluster(data_dir=state / "pg", port=ports.db)
        if cluster.initialised():
            cluster.stop()


def write(copy: RepoCopy, block: Block) -> None:
    assert block.file is not None
    target = copy.root / block.file
    assert target.resolve().is_relative_to(copy.root.resolve()), block.where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.code, encoding="utf-8")


def run_shell(copy: RepoCopy, block: Block, env: dict[str, str]) -> str:
    done = copy.run(f"set -euo pipefail\n{block.code}", env=env, timeout=STEP_SECONDS)
    assert done.returncode == 0, (
        f"{block.where}: exit {done.returncode}\n{block.code}\n--- stdout\n"
        f"{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
    return done.stdout


def test_a_clean_copy_following_the_tutorial_gets_a_live_tickets_slice() -> None:
    if (REPO / "domain" / "tickets").exists():
        pytest.skip("this checkout has followed the tutorial already (domain/tickets exists); "
                    "it starts from a project without it")
    with repo_copy() as copy, stack_env(copy) as (env, state):
        started: list[DevRun] = []
        said = ""
        try:
            for block in steps():
                if block.file is not None:
                    write(copy, block)
                elif "keep-running" in block.options:
                    started.append(start_in_background(block, copy, env))
                else:
                    said = run_shell(copy, block, env)
            # The last step, watch.mjs, saw the inserted row and then the saga's escalation.
            watched = said.splitlines()
            assert any(line.startswith("INSERT status=open escalated=false") for line in watched)
            assert watched[-1].startswith("UPDATE status=open escalated=true"), said
        finally:
            for background in started:
                stop(background.proc, STOP_SECONDS)
                kill_what_dev_started(state)


def kill_what_dev_started(state: Path) -> None:
    """Whatever `intent dev` started and did not stop (it stops them all on SIGTERM; this
    is for a test that failed half way)."""
    record = state / "dev.json"
    if not record.is_file():
        return
    pids = json.loads(record.read_text()).get("processes", {}).values()
    for pid in pids:
        if isinstance(pid, int) and alive(pid) and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
