"""`intent dev` survives PostgreSQL going away: the postmaster it started is killed by
SIGKILL (by its PID, from postmaster.pid) while a client keeps submitting, and dev starts
it again, the processes that need
it come back without being given up on, and every command acknowledged before, during or
right after the outage ends processed, exactly once. `intent status` says what a dev stack
is restarting while its database cannot be reached."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from supabase import Client

from tests.support.dev import (
    START_SECONDS,
    Ports,
    client,
    collect_pids,
    command_status,
    finished,
    intent_dev,
    state_dir,
    stop_cleanly,
)
from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.processes import ambient_env, run_intent
from tests.support.waiting import until_sync
from tools.local.cluster import LocalCluster, free_port
from tools.local.dev import record
from tools.local.dev.stack import DevConfig, plan

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]

# From the kill to every process ready again, on a busy 2-core machine: PostgreSQL's crash
# recovery and the restarted children's starts (each 1-2 s) with their backoff.
RECOVER_SECONDS = 120
# A command acknowledged before the outage may sit in a batch dispatched then; the pump
# sweeps such batches after 60 s (its --sweep-after), so allow for that and the rerun.
PROCESS_SECONDS = 150


def _record(state: Path) -> record.DevRecord | None:
    return record.read(state / "dev.json")


def _healthy(state: Path) -> bool:
    found = _record(state)
    every = {spec.name for spec in plan(DevConfig(state_dir=state))}
    return (found is not None and found.postgres_state == "up"
            and set(found.states) == every and not found.not_ready())


def _receive(c: Client, item: str, command_id: str) -> bool:
    """Submit one unit of stock for the item; True when the gateway acknowledged it."""
    try:
        data: Any = c.rpc("submit_command", {
            "command_type": "inventory.receive_stock",
            "payload": {"item_id": item, "quantity": 1},
            "command_id": command_id,
        }).execute().data
    except Exception:  # refused while the database is down: not acknowledged
        return False
    return bool(data) and str(data.get("command_id")) == command_id


def _load(c: Client, item: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Submit one command after the other until `stop` (at most 2,000, bounded); the
    acknowledged ones go to `acknowledged`. Refusals while the database is down are
    retried after a short pause."""
    for _ in range(2_000):
        if stop.is_set():
            return
        command_id = str(uuid4())
        if _receive(c, item, command_id):
            acknowledged.append(command_id)
        else:
            stop.wait(0.2)


@contextlib.contextmanager
def _dropped_segments() -> Iterator[list[tuple[int, int]]]:
    """(shmid, postmaster pid) of killed servers: on the way out, each one's shared memory
    segment that is still there and unused is removed (the restarted server removes it
    itself; a test that fails before that must not leave it behind)."""
    killed: list[tuple[int, int]] = []
    try:
        yield killed
    finally:
        try:
            rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
        except OSError:
            rows = []
        for row in (r.split() for r in rows):
            if (int(row[1]), int(row[4])) in killed and row[6] == "0":
                subprocess.run(["ipcrm", "-m", row[1]], check=False, capture_output=True)


def _intent_status(state: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    return run_intent("status", "--no-temporal", "--database-url", database_url, timeout=120,
                      env={**ambient_env(), "INTENT_STATE_DIR": str(state)})


def test_a_killed_postgres_is_restarted_and_acknowledged_commands_finish_once() -> None:
    ports, seen = Ports(), set[int]()
    item = str(uuid4())
    with (state_dir() as state, _dropped_segments() as segments,
          intent_dev(state, ports, seen) as run):
        run.wait_for(r"dev: all processes are ready", START_SECONDS)
        seen |= collect_pids(state)
        c = client(run)
        registered: Any = c.rpc("submit_command", {
            "command_type": "inventory.register_item",
            "payload": {"item_id": item, "sku": "PG-KILL-1", "name": "Restart widget"},
        }).execute().data
        status = until_sync(lambda: finished(command_status(c, str(registered["command_id"]))),
                            60, "the first command finished")
        assert status["status"] == "processed", status

        # Acknowledged just before the outage: most likely still pending when it starts.
        acknowledged = [str(uuid4()) for _ in range(3)]
        for command_id in acknowledged:
            assert _receive(c, item, command_id)
        # Under load: a client keeps submitting through the kill until the stack is back.
        loaded, stop_load = list[str](), threading.Event()
        loader = threading.Thread(target=_load, args=(client(run), item, loaded, stop_load),
                                  daemon=True)
        loader.start()
        time.sleep(1.0)

        lock = (state / "pg" / "postmaster.pid").read_text().splitlines()
        killed = int(lock[0])
        segments.append((int(lock[6].split()[1]), killed))
        os.kill(killed, signal.SIGKILL)
        # dev notices, and says so in dev.json (what `intent status` reads) ...
        until_sync(lambda: (r := _record(state)) is not None and r.postgres_state != "up",
                   10, "dev.json says postgres is not up")
        # ... while commands keep being submitted: the acknowledged ones count.
        during: list[str] = []
        deadline = time.monotonic() + 60
        while len(during) < 3 and time.monotonic() < deadline:
            command_id = str(uuid4())
            if _receive(c, item, command_id):
                during.append(command_id)
            time.sleep(0.2)
        assert during, f"no command was acknowledged within 60 s of the kill:\n{run.output()}"
        acknowledged += during

        until_sync(lambda: _healthy(state), RECOVER_SECONDS,
                   f"postgres up and every process ready again (dev.json: {_record(state)})")
        stop_load.set()
        loader.join(timeout=30)
        assert len(loaded) >= 10, f"the load got only {len(loaded)} command(s) acknowledged"
        acknowledged += loaded
        assert run.proc.poll() is None, run.output()
        out = run.output()
        assert f"postgres: the server (pid {killed}) is gone; restarting it" in out, out
        assert "postgres: restarted, pid" in out, out
        assert "giving up" not in out, out
        restarted = _record(state)
        assert restarted is not None
        assert restarted.postgres not in (None, killed)

        after = str(uuid4())
        assert _receive(c, item, after), "a command after the restart was not acknowledged"
        acknowledged.append(after)
        def done(command_id: str) -> Callable[[], dict[str, Any] | None]:
            return lambda: finished(command_status(c, command_id))

        for command_id in acknowledged:
            status = until_sync(done(command_id), PROCESS_SECONDS, f"command {command_id} finished")
            assert status["status"] == "processed", status

        # Exactly once: one event per processed command (also one whose acknowledgement
        # was lost in the outage), none for another, and the stock level agrees.
        admin = LocalCluster(data_dir=state / "pg", port=ports.db).admin_url
        with psycopg.connect(admin, autocommit=True) as conn:
            def unfinished() -> bool:
                row = conn.execute(
                    "select count(*) from intent.commands where aggregate_id = %s"
                    " and status in ('pending', 'dispatched')", (item,)).fetchone()
                return row is not None and row[0] == 0

            until_sync(unfinished, PROCESS_SECONDS, "every stored command of the item finished")
            commands = {str(cid): (status, result) for cid, status, result in conn.execute(
                "select command_id, status, result from intent.commands"
                " where aggregate_id = %s and command_type = 'inventory.receive_stock'",
                (item,)).fetchall()}
            events = [str(e) for (e,) in conn.execute(
                "select event_id from intent.events where aggregate_id = %s"
                " and event_type = 'inventory.stock_received'", (item,)).fetchall()]
        assert set(acknowledged) <= set(commands)
        assert {s for s, _ in commands.values()} == {"processed"}, commands
        decided = [e for _, result in commands.values() for e in result["events"]]
        assert len(decided) == len(commands)  # one event per command
        assert sorted(decided) == sorted(events)  # each stored once, no other
        rows: Any = c.table("stock_levels").select("available").eq("item_id", item).execute().data
        assert rows == [{"available": len(commands)}]

        # Healthy again, `intent status` says so, naming the dev stack.
        shown = _intent_status(state, f"postgresql://postgres:postgres@127.0.0.1:{ports.db}"
                                      "/postgres")
        assert f"intent dev pid {run.proc.pid}: postgres up" in shown.stdout, shown
        seen |= collect_pids(state)
        stop_cleanly(run, collect_pids(state), ports)


def test_status_says_what_dev_is_restarting_when_the_database_cannot_be_reached(
    tmp_path: Path,
) -> None:
    """The dev.json of a running dev (this test's own pid stands in for it) whose
    PostgreSQL is down: status exits 3, as for any unreachable database, and says why."""
    port = free_port()  # nothing listens there
    record.write(tmp_path / "dev.json", record.DevRecord(
        dev=os.getpid(), postgres=None, postgres_started_by_dev=True,
        postgres_state="restarting", db_port=port, processes={"temporal": 1},
        states={"temporal": "ready", "pump": "waiting for postgres"},
    ))
    url = f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres"
    shown = _intent_status(tmp_path, url)
    assert shown.returncode == 3, shown
    assert "cannot reach the database" in shown.stderr
    said = " ".join(shown.stderr.split())
    assert f"`intent dev` (pid {os.getpid()}) runs this database" in said, said
    assert "postgres is restarting; pump is waiting for postgres" in said, said
    # Another database's status does not mention this dev stack.
    other = _intent_status(tmp_path, f"postgresql://postgres:postgres@127.0.0.1:{free_port()}"
                                     "/postgres")
    assert other.returncode == 3
    assert "intent dev" not in other.stderr
    assert json.loads((tmp_path / "dev.json").read_text())["postgres_state"] == "restarting"
