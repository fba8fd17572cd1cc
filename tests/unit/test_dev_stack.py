"""The plan of `intent dev` (restart decisions, port checks, the process list) and the
supervisor's restart / give-up behaviour on tiny real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.waiting import until_sync
from tools.checks.status import read_dev_stack
from tools.local.cluster import ClusterError, LocalCluster, postgres_alive
from tools.local.dev import record
from tools.local.dev.postgres import (
    Keeper,
    clear_stale_lock,
    left_by_dead_dev,
    live_dev,
    running_port,
    serving_pid,
)
from tools.local.dev.stack import (
    DatabaseDown,
    DatabaseHealthy,
    DatabaseLost,
    DatabaseState,
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
from tools.local.dev.supervisor import Outcome, Supervisor, describe_exit, tail

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


RUNTIME = ("worker", "pump", "projections", "sagas", "relay")


def test_the_plan_starts_temporal_first_and_the_gateway_last_all_on_loopback(
    tmp_path: Path,
) -> None:
    config = DevConfig(state_dir=tmp_path, gateway_port=1001, db_port=1002, temporal_port=1003)
    specs = plan(config)
    assert [s.name for s in specs] == ["temporal", "worker", "pump", "projections", "sagas",
                                       "relay", "gateway"]
    temporal = specs[0]
    assert temporal.health == TemporalReady("127.0.0.1:1003", "default",
                                            str(config.temporal_binary))
    argv = list(temporal.argv)
    assert argv[argv.index("--ip") + 1] == "127.0.0.1"
    assert argv[argv.index("--db-filename") + 1] == str(tmp_path / "temporal" / "temporal.db")
    assert "history.transferProcessorMaxPollRPS=10000" in argv
    for spec in specs:
        # The runtime connects as its least-privilege role; the gateway as postgres (it logs
        # in as PostgREST's authenticator itself) and Temporal needs no database.
        user = "intent_worker" if spec.name in RUNTIME else "postgres"
        assert spec.env["DATABASE_URL"] == f"postgresql://{user}:postgres@127.0.0.1:1002/postgres"
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


def test_deaths_while_the_database_is_down_do_not_count_but_back_off() -> None:
    # At the edge of the budget, a blameless death keeps the streak as it was ...
    first = POLICY.decide(4, ran_for=0.2, blameless=True)
    assert first == Restart(delay=0.5, streak=4, excused=1)
    # ... however many there are; their own backoff grows up to the cap.
    delays, excused = [], 0
    for _ in range(5):
        decision = POLICY.decide(4, ran_for=0.2, excused=excused, blameless=True)
        assert isinstance(decision, Restart)
        assert decision.streak == 4
        delays.append(decision.delay)
        excused = decision.excused
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    # The next counted quick failure is the last one of the budget, as before the outage.
    assert POLICY.decide(4, ran_for=0.2, excused=excused) == GiveUp(streak=5)
    # A long run forgets both.
    assert POLICY.decide(4, ran_for=600.0, excused=5, blameless=True) == Restart(0.5, 0)


def test_the_plan_marks_what_needs_the_database(tmp_path: Path) -> None:
    specs = {s.name: s for s in plan(DevConfig(state_dir=tmp_path))}
    assert not specs["temporal"].needs_database  # its data is in SQLite
    assert all(specs[name].needs_database
               for name in ("worker", "pump", "projections", "sagas", "relay", "gateway"))


class FakeDatabase:
    """What a Keeper would answer, set by the test."""

    def __init__(self, state: DatabaseState) -> None:
        self.state = state
        self.calls = 0

    def __call__(self) -> DatabaseState:
        self.calls += 1
        return self.state


DOWN = DatabaseDown("restarting")
UP = DatabaseHealthy(1)


def _driven(steps: list[Callable[[Supervisor], bool]], supervisor: Supervisor,
            seconds: float = 30) -> Callable[[], bool]:
    """A `stopping` callback that runs each step at every look until it returns True, then
    the next; True (stop) once all are done. Bounded in time."""
    deadline = time.monotonic() + seconds

    def stopping() -> bool:
        assert time.monotonic() < deadline, "the steps did not finish in time"
        while steps and steps[0](supervisor):
            steps.pop(0)
        return not steps

    return stopping


def test_a_process_that_needs_the_database_waits_for_it_and_its_deaths_do_not_count(
    tmp_path: Path,
) -> None:
    """It dies at once, every time. While the database is down it is not started at all;
    once it is back, the deaths within the grace time (quick_run) are not counted, and
    only then is it given up on, after max_quick_failures counted ones."""
    db = FakeDatabase(DOWN)
    said: list[str] = []
    supervisor = Supervisor(
        [ProcessSpec("needy", _python("import sys; sys.exit(3)"), LogLine("never"),
                     needs_database=True)],
        logs_dir=tmp_path / "logs", say=said.append, ready_timeout=30,
        policy=RestartPolicy(first_delay=0.05, max_delay=0.2, quick_run=1.5,
                             max_quick_failures=2),
        database=db,
    )
    child = supervisor.children[0]
    looks = 0

    def held_while_down(s: Supervisor) -> bool:
        nonlocal looks
        looks += 1
        assert child.starts == 0
        if looks > 1:  # the first look is before the first start
            assert s.states() == {"needy": "waiting for postgres"}
        if looks == 10:
            db.state = UP
            return True
        return False

    try:
        outcome = supervisor.start_all(_driven([held_while_down, lambda _: False],
                                               supervisor))
    finally:
        supervisor.stop_all()
    assert outcome is Outcome.FAILED
    assert "needy: waiting for postgres before starting it" in said
    excused = [line for line in said if "(postgres was down; not counted)" in line]
    assert len(excused) >= 2, said
    assert child.starts == len(excused) + 2  # then two counted deaths: given up
    assert supervisor.failure is not None
    assert "giving up on it: it died 2 times in a row" in supervisor.failure


def test_a_process_that_dies_while_the_database_is_down_restarts_once_it_is_back(
    tmp_path: Path,
) -> None:
    die = tmp_path / "die"
    code = (
        "import pathlib, sys, time\n"
        "print('up', flush=True)\n"
        f"while not pathlib.Path({str(die)!r}).exists(): time.sleep(0.02)\n"
        "sys.exit(1)\n"
    )
    db = FakeDatabase(UP)
    said: list[str] = []
    changes: list[dict[str, str]] = []
    supervisor = Supervisor(
        [ProcessSpec("pump", _python(code), LogLine("up"), needs_database=True),
         ProcessSpec("temporal", _python("import time; print('up', flush=True); "
                                         "time.sleep(600)"), LogLine("up"))],
        logs_dir=tmp_path / "logs", say=said.append, ready_timeout=30,
        policy=RestartPolicy(first_delay=0.05, max_quick_failures=1),
        database=db, on_change=lambda: changes.append(supervisor.states()),
    )
    pump = supervisor.children[0]
    waited_since = 0.0

    def outage(s: Supervisor) -> bool:
        db.state = DOWN
        die.touch()
        return True

    def held(s: Supervisor) -> bool:
        nonlocal waited_since
        if pump.state() != "waiting for postgres":
            assert pump.starts == 1
            return False
        waited_since = waited_since or time.monotonic()
        assert pump.starts == 1  # not restarted while the database is down
        if time.monotonic() - waited_since < 1.0:
            return False
        die.unlink()
        db.state = UP
        return True

    def back(s: Supervisor) -> bool:
        return pump.starts == 2 and pump.ready

    try:
        assert supervisor.start_all(lambda: False) is Outcome.READY
        outcome = supervisor.watch(_driven([outage, held, back], supervisor))
    finally:
        supervisor.stop_all()
    assert outcome is Outcome.STOPPED  # never given up on, with a budget of one failure
    assert any("pump: pid" in line and "exited with code 1" in line
               and "(postgres is down; not counted); restarting it once postgres is back"
               in line for line in said), said
    assert {"pump": "waiting for postgres", "temporal": "ready"} in changes


def test_a_database_that_cannot_be_brought_back_fails_the_stack(tmp_path: Path) -> None:
    db = FakeDatabase(UP)
    supervisor = Supervisor(
        [ProcessSpec("slow", _python("import time; print('up', flush=True); time.sleep(600)"),
                     LogLine("up"))],
        logs_dir=tmp_path / "logs", say=lambda _: None, database=db,
    )
    try:
        assert supervisor.start_all(lambda: False) is Outcome.READY
        db.state = DatabaseLost("postgres: gone for good")
        assert supervisor.watch(lambda: False) is Outcome.FAILED
    finally:
        supervisor.stop_all()
    assert supervisor.failure == "postgres: gone for good"


# -- the keeper, on a fake server: a process whose command line says postgres, and the
# postmaster.pid it writes (PostgreSQL's own format: status "ready" on line 8) ----------

FAKE_SERVER = (
    "import os, pathlib, sys, time\n"
    "data = pathlib.Path(sys.argv[1])\n"
    "lines = [str(os.getpid()), str(data), '0', sys.argv[2], '', '127.0.0.1',"
    " '  0  999999999', 'ready']\n"
    "(data / 'postmaster.pid').write_text('\\n'.join(lines) + '\\n')\n"
    "time.sleep(600)\n"
)


class FakeCluster(LocalCluster):
    """Starts a fake server instead of pg_ctl; `refuse` makes every start fail."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir=data_dir, port=port)
        self.servers: list[subprocess.Popen[bytes]] = []
        self.refuse = False

    def start(self, timeout: int = 60, *, wait: bool = True) -> None:
        if self.refuse:
            raise ClusterError("port in use")
        self.servers.append(subprocess.Popen(
            [sys.executable, "-c", FAKE_SERVER, str(self.data_dir), str(self.port),
             "postgres-fake"]))

    def stop(self, timeout: int = 60) -> bool:
        for server in self.servers:
            server.kill()
            server.wait()
        return bool(self.servers)


@pytest.fixture
def fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    cluster = FakeCluster(tmp_path / "pg", 5999)
    cluster.data_dir.mkdir()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_a_zombie_postmaster_is_not_alive_and_its_lock_file_is_cleared(
    fake_cluster: FakeCluster,
) -> None:
    fake_cluster.start()
    server = fake_cluster.servers[0]
    until_sync(lambda: serving_pid(fake_cluster) == server.pid)
    assert postgres_alive(server.pid)
    assert running_port(fake_cluster) == 5999
    assert clear_stale_lock(fake_cluster) is None  # a live server's: kept
    assert (fake_cluster.data_dir / "postmaster.pid").exists()
    os.kill(server.pid, signal.SIGKILL)
    until_sync(lambda: Path(f"/proc/{server.pid}/stat").read_text().split(") ")[1][0] == "Z")
    # a zombie (never reaped: nobody waits for it yet) passes kill(pid, 0), not this
    assert not postgres_alive(server.pid)
    assert serving_pid(fake_cluster) is None
    assert running_port(fake_cluster) is None
    assert clear_stale_lock(fake_cluster) is None
    assert not (fake_cluster.data_dir / "postmaster.pid").exists()


def test_the_keeper_restarts_a_server_it_started(fake_cluster: FakeCluster) -> None:
    fake_cluster.start()
    until_sync(lambda: serving_pid(fake_cluster) is not None)
    first = fake_cluster.servers[0].pid
    said: list[str] = []
    keeper = Keeper(fake_cluster, pid=first, restart=True, say=said.append,
                    policy=RestartPolicy(first_delay=0.05))
    assert keeper() == DatabaseHealthy(first)
    fake_cluster.servers[0].kill()
    fake_cluster.servers[0].wait()
    assert keeper() == DatabaseDown("restarting")
    assert keeper.state == "restarting"
    until_sync(lambda: isinstance(keeper(), DatabaseHealthy))
    assert len(fake_cluster.servers) == 2
    assert keeper.pid == fake_cluster.servers[1].pid != first
    assert keeper.state == "up"
    assert any(f"the server (pid {first}) is gone; restarting it" in line for line in said)
    assert any(line.startswith(f"postgres: restarted, pid {keeper.pid}") for line in said)


def test_the_keeper_gives_up_on_a_server_that_will_not_start(
    fake_cluster: FakeCluster,
) -> None:
    fake_cluster.start()
    until_sync(lambda: serving_pid(fake_cluster) is not None)
    said: list[str] = []
    keeper = Keeper(fake_cluster, pid=fake_cluster.servers[0].pid, restart=True,
                    say=said.append,
                    policy=RestartPolicy(first_delay=0.02, max_delay=0.05, quick_run=60,
                                         max_quick_failures=4))
    fake_cluster.stop()
    fake_cluster.refuse = True
    until_sync(lambda: isinstance(keeper(), DatabaseLost))
    lost = keeper()
    assert isinstance(lost, DatabaseLost)
    # The server's own quick death counts, then each failed start: 1 + 3.
    assert "the restart failed: port in use; giving up on it: it failed 4 times" in lost.message
    assert sum("starting the server again" in line for line in said) == 3
    assert sum("trying again" in line for line in said) == 2
    assert keeper.state == "lost"


def test_the_keeper_waits_for_a_server_it_did_not_start(fake_cluster: FakeCluster) -> None:
    fake_cluster.start()
    until_sync(lambda: serving_pid(fake_cluster) is not None)
    first = fake_cluster.servers[0].pid
    said: list[str] = []
    keeper = Keeper(fake_cluster, pid=first, restart=False, say=said.append,
                    policy=RestartPolicy(first_delay=0.01, max_quick_failures=1))
    fake_cluster.stop()
    fake_cluster.servers.clear()
    for _ in range(20):  # however long: never a start, never given up on
        assert keeper() == DatabaseDown("waiting")
        time.sleep(0.01)
    assert fake_cluster.servers == []
    assert "whoever started it brings it back" in said[0]
    fake_cluster.start()  # as `intent db start` would
    until_sync(lambda: isinstance(keeper(), DatabaseHealthy))
    assert keeper.pid == fake_cluster.servers[0].pid
    assert said[-1].startswith(f"postgres: back, pid {keeper.pid}")


def test_status_reads_the_dev_record_of_its_own_database_only(tmp_path: Path) -> None:
    record.write(tmp_path / "dev.json", record.DevRecord(
        dev=os.getpid(), postgres=None, postgres_started_by_dev=True,
        postgres_state="restarting", db_port=5999,
        states={"temporal": "ready", "pump": "waiting for postgres"},
    ))
    dev = read_dev_stack(tmp_path, "postgresql://postgres:postgres@127.0.0.1:5999/postgres")
    assert dev is not None
    assert dev.notes() == ["postgres is restarting", "pump is waiting for postgres"]
    assert read_dev_stack(tmp_path, "postgresql://u:p@127.0.0.1:5432/postgres") is None
    assert read_dev_stack(tmp_path, "postgresql://u:p@db.example.com:5999/postgres") is None
    # a dev that is gone, or an older record without states, says nothing
    record.write(tmp_path / "dev.json", record.DevRecord(
        dev=_dead_pid(), postgres=None, postgres_started_by_dev=True,
        postgres_state="restarting", db_port=5999))
    assert read_dev_stack(tmp_path, "postgresql://u:p@127.0.0.1:5999/postgres") is None
    (tmp_path / "dev.json").write_text(json.dumps({"dev": os.getpid(), "postgres": 1}))
    assert record.read(tmp_path / "dev.json") is None
