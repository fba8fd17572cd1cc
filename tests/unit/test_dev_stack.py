"""The plan of `intent dev` (restart decisions, port checks, the process list) and the
supervisor's restart / give-up behaviour on tiny real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tools.dev.database import left_by_dead_dev, live_dev
from tools.dev.stack import (
    DevConfig,
    GiveUp,
    LogLine,
    PortOption,
    ProcessSpec,
    ReadyFile,
    Restart,
    RestartPolicy,
    TemporalReady,
    plan,
    port_in_use,
    port_problems,
)
from tools.dev.supervisor import Outcome, Supervisor, describe_exit, tail

POLICY = RestartPolicy(first_delay=0.5, factor=2.0, max_delay=3.0, quick_run=10.0,
                       max_quick_failures=5)


def test_quick_failures_back_off_exponentially_up_to_the_cap() -> None:
    streak, delays = 0, []
    for _ in range(4):
        decision = POLICY.decide(streak, ran_for=1.0)
        assert isinstance(decision, Restart)
        delays.append(decision.delay)
        streak = decision.streak
    assert delays == [0.5, 1.0, 2.0, 3.0]
    assert streak == 4


def test_a_process_that_keeps_dying_quickly_is_given_up_on() -> None:
    assert POLICY.decide(4, ran_for=0.2) == GiveUp(streak=5)


def test_a_death_after_a_long_run_restarts_at_once_and_forgets_earlier_failures() -> None:
    assert POLICY.decide(4, ran_for=600.0) == Restart(delay=0.5, streak=0)
    # and the next quick failure starts a new streak
    assert POLICY.decide(0, ran_for=1.0) == Restart(delay=0.5, streak=1)


def test_a_listening_port_is_in_use_and_a_closed_one_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use(port)
        problems = port_problems([PortOption("the gateway", port, "--gateway-port",
                                             "INTENT_GATEWAY_PORT")])
        assert len(problems) == 1
        assert f"port {port}" in problems[0]
        assert "--gateway-port" in problems[0]
        assert "INTENT_GATEWAY_PORT" in problems[0]
        # a port our own running cluster already serves is not a problem
        assert port_problems([PortOption("the database", port, "--db-port", "INTENT_DB_PORT")],
                             ours=frozenset({port})) == []
    assert not port_in_use(port)


def test_one_port_given_twice_is_a_problem() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    problems = port_problems([
        PortOption("the database", port, "--db-port", "INTENT_DB_PORT"),
        PortOption("Temporal", port, "--temporal-port", "INTENT_TEMPORAL_PORT"),
    ])
    assert len(problems) == 1
    assert "--db-port" in problems[0]
    assert "--temporal-port" in problems[0]


def test_the_plan_starts_temporal_first_and_the_gateway_last_all_on_loopback(
    tmp_path: Path,
) -> None:
    config = DevConfig(state_dir=tmp_path, gateway_port=1001, db_port=1002, temporal_port=1003)
    specs = plan(config)
    assert [s.name for s in specs] == ["temporal", "worker", "pump", "projections", "sagas",
                                       "gateway"]
    temporal = specs[0]
    assert temporal.health == TemporalReady("127.0.0.1:1003", "default",
                                            str(config.temporal_binary))
    argv = list(temporal.argv)
    assert argv[argv.index("--ip") + 1] == "127.0.0.1"
    assert argv[argv.index("--db-filename") + 1] == str(tmp_path / "temporal" / "temporal.db")
    assert "history.transferProcessorMaxPollRPS=10000" in argv
    for spec in specs:
        assert spec.env["DATABASE_URL"] == "postgresql://postgres:postgres@127.0.0.1:1002/postgres"
        assert spec.env["TEMPORAL_ADDRESS"] == "127.0.0.1:1003"
        assert spec.env["INTENT_STATE_DIR"] == str(tmp_path)
    gateway = specs[-1].argv
    assert gateway[gateway.index("--port") + 1] == "1001"


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-9) == "was killed by SIGKILL"


def test_tail_reads_only_what_came_after_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("old run\n")
    offset = log.stat().st_size
    with log.open("a") as fh:
        fh.writelines(f"line {i}\n" for i in range(20))
    assert tail(log, offset, lines=3) == ["line 17", "line 18", "line 19"]
    assert tail(log, log.stat().st_size) == []


def _python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_the_supervisor_restarts_a_dead_process_and_stops_it_by_pid(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    # Dies at its first start, then runs: the restart must bring it to ready.
    code = (
        "import pathlib, sys, time\n"
        f"m = pathlib.Path({str(marker)!r})\n"
        "if not m.exists():\n"
        "    m.touch(); print('boom', flush=True); sys.exit(7)\n"
        "print('flaky running', flush=True)\n"
        "time.sleep(600)\n"
    )
    said: list[str] = []
    supervisor = Supervisor(
        [ProcessSpec("flaky", _python(code), LogLine("flaky running"))],
        logs_dir=tmp_path / "logs", say=said.append, ready_timeout=30,
        policy=RestartPolicy(first_delay=0.1), stop_timeout=5,
    )
    try:
        assert supervisor.start_all(lambda: False) is Outcome.READY
        child = supervisor.children[0]
        assert child.starts == 2
        assert any("exited with code 7" in line and "restarting" in line for line in said)
        assert "  | boom" in said
        proc = child.proc
        assert proc is not None
    finally:
        supervisor.stop_all()
    assert proc.returncode == -15  # stopped by our SIGTERM
    assert supervisor.pids() == {}


def test_a_ready_file_makes_a_process_ready_at_any_log_level_and_a_stale_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = tmp_path / "ready" / "quiet"
    ready.parent.mkdir()
    ready.write_text("1")  # left by a previous start: must not count
    monkeypatch.setenv("INTENT_LOG_LEVEL", "error")
    # Says nothing at all, and marks itself ready only once the marker below exists.
    go = tmp_path / "go"
    code = (
        "import pathlib, time\n"
        "from pump.readiness import mark_ready\n"
        f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.05)\n"
        "mark_ready()\n"
        "time.sleep(600)\n"
    )
    supervisor = Supervisor(
        [ProcessSpec("quiet", _python(code), ReadyFile(ready))],
        logs_dir=tmp_path / "logs", say=lambda _: None, ready_timeout=30,
    )
    calls = 0

    def stop_requested() -> bool:
        nonlocal calls
        calls += 1
        if calls == 5:
            child = supervisor.children[0]
            assert not child.ready  # the stale file did not count
            go.touch()
        return False

    try:
        assert supervisor.start_all(stop_requested) is Outcome.READY
        proc = supervisor.children[0].proc
        assert proc is not None
        assert ready.read_text() == str(proc.pid)
    finally:
        supervisor.stop_all()


def test_the_supervisor_gives_up_on_a_process_that_keeps_dying(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(
        [ProcessSpec("doomed", _python("import sys; print('no config'); sys.exit(3)"),
                     LogLine("never"))],
        logs_dir=tmp_path / "logs", say=said.append, ready_timeout=30,
        policy=RestartPolicy(first_delay=0.05, max_quick_failures=3),
    )
    try:
        assert supervisor.start_all(lambda: False) is Outcome.FAILED
    finally:
        supervisor.stop_all()
    assert supervisor.children[0].starts == 3
    assert supervisor.failure is not None
    assert "doomed" in supervisor.failure
    assert "giving up" in supervisor.failure
    assert "exited with code 3" in supervisor.failure
    assert "  | no config" in said


@pytest.mark.parametrize("stop_after", [0, 1])
def test_a_stop_request_while_starting_is_an_interruption(tmp_path: Path, stop_after: int) -> None:
    calls = iter(range(100))
    supervisor = Supervisor(
        [ProcessSpec("slow", _python("import time; time.sleep(600)"), LogLine("never"))],
        logs_dir=tmp_path / "logs", say=lambda _: None,
    )
    try:
        outcome = supervisor.start_all(lambda: next(calls) >= stop_after)
    finally:
        supervisor.stop_all()
    assert outcome is Outcome.INTERRUPTED
    assert supervisor.pids() == {}


def _dead_pid() -> int:
    proc = subprocess.Popen(_python("pass"))
    proc.wait()
    return proc.pid


def test_postgres_left_by_a_killed_dev_is_taken_over_but_not_one_of_a_live_dev(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "dev.json"
    record = {"dev": _dead_pid(), "postgres": 4242, "postgres_started_by_dev": True}
    pid_file.write_text(json.dumps(record))
    assert left_by_dead_dev(pid_file) == 4242
    assert live_dev(pid_file) is None
    # a server that dev found running (not its own) is never taken over
    pid_file.write_text(json.dumps({**record, "postgres_started_by_dev": False}))
    assert left_by_dead_dev(pid_file) is None
    # a dev that still runs keeps its server, and blocks a second dev on the same state dir
    pid_file.write_text(json.dumps({**record, "dev": os.getppid()}))
    assert left_by_dead_dev(pid_file) is None
    assert live_dev(pid_file) == os.getppid()
    assert left_by_dead_dev(tmp_path / "missing.json") is None
