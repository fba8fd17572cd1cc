"""`intent dev` as a developer runs it: the whole stack from one command, a command through
the gateway with supabase-py, a clean stop by SIGTERM, a second run that still has the data,
and a port in use refused before anything starts."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from typing import Any
from uuid import uuid4

import pytest

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
from tests.support.processes import alive
from tests.support.waiting import until_sync
from tools.local.dev.stack import port_in_use

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]

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
            status = until_sync(lambda: finished(command_status(c, command_id)), 60,
                                 "the command finished")
            assert status["status"] == "processed", status
            rows = c.table("stock_levels").select("sku").eq("item_id", item).execute().data
            assert rows == [{"sku": "DEV-1"}]
            console = run.value("console")
            assert console == f"{run.value('API URL')}/console"
            with urllib.request.urlopen(f"{console}/", timeout=10) as page:
                assert b"Intent console" in page.read()
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
        still = [pid for pid in started if alive(pid)]
        assert still == [], f"still running: {still}"
        assert [p for p in ports.all() if port_in_use(p)] == []
