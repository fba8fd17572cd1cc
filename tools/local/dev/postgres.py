"""The stack's PostgreSQL: the embedded cluster under the state dir, as `intent db start`
runs it. pg_ctl runs the server detached, so it is not one of the supervisor's children:
`intent dev` stops it only when it started it, and a Keeper watches it instead, restarting
it when it goes away (or waiting for it, when it was not `intent dev` that started it).

A postmaster killed by SIGKILL may stay a zombie for a while (or for good, where PID 1 does
not reap orphans), and `kill(pid, 0)` succeeds on a zombie: both pg_ctl and the server
then take its postmaster.pid for a live server's. So liveness is read from /proc here, and
a lock file left by a dead server is removed before a restart, once no process of the old
server is attached to its shared memory. (The new server makes that check again itself,
finding the old segment by the data folder's key, and refuses to start while it is used.)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.local.cluster import ClusterError, LocalCluster, postgres_alive, process_exists
from tools.local.db import prepare
from tools.local.dev.stack import (
    DatabaseDown,
    DatabaseHealthy,
    DatabaseLost,
    DatabaseState,
    DevConfig,
    GiveUp,
    RestartPolicy,
)
from tools.local.migrations import Migration, MigrationReport

Say = Callable[[str], None]
# A launched server that has not written a live pid to postmaster.pid by then has failed.
LAUNCH_GRACE_SECONDS = 5.0
# How often a wait for a server someone else must restart is repeated in the output.
STILL_WAITING_SECONDS = 60.0


def embedded(config: DevConfig) -> LocalCluster:
    return LocalCluster(data_dir=config.pg_dir, port=config.db_port)


def _lock_lines(cluster: LocalCluster) -> list[str]:
    """postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shared
    memory key and id, status ("starting", "ready", "stopping")."""
    try:
        return (cluster.data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return []


def _live_pid(lines: list[str]) -> int | None:
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None
    return pid if postgres_alive(pid) else None


def server_pid(cluster: LocalCluster) -> int | None:
    """The pid of the cluster's live postmaster, whatever its status, or None."""
    return _live_pid(_lock_lines(cluster))


def serving_pid(cluster: LocalCluster) -> int | None:
    """The pid of the cluster's postmaster when it is alive and accepts connections."""
    lines = _lock_lines(cluster)
    pid = _live_pid(lines)
    if pid is None or len(lines) < 8 or lines[7].strip() != "ready":
        return None
    return pid


def _shared_memory_in_use(lines: list[str]) -> bool | None:
    """Whether processes are still attached to the old server's shared memory segment
    (postmaster.pid line 7: key and id); None when that cannot be told."""
    try:
        shmid = int(lines[6].split()[1])
        table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except (OSError, ValueError, IndexError):
        return None
    for row in table:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6]) > 0
    return False  # the segment is gone


def clear_stale_lock(cluster: LocalCluster) -> str | None:
    """Remove postmaster.pid when it names a process that exists but is no live server (a
    zombie postmaster, or a reused pid) and none of the old server's processes is left;
    PostgreSQL handles a pid that does not exist itself. A message when something blocks
    the start (old processes still attached), None when the way is clear."""
    lines = _lock_lines(cluster)
    try:
        pid = int(lines[0])
    except (ValueError, IndexError):
        return None
    if postgres_alive(pid):
        return None  # a live server: not stale
    if _shared_memory_in_use(lines):
        return (f"processes of the old server (pid {pid}) are still attached to its "
                "shared memory")
    if process_exists(pid):
        # No new server can have replaced the file meanwhile: while it names a process
        # that exists, pg_ctl says "running" and PostgreSQL refuses to start.
        (cluster.data_dir / "postmaster.pid").unlink(missing_ok=True)
    return None


def running_port(cluster: LocalCluster) -> int | None:
    """The port of the cluster's running server (postmaster.pid's fourth line), or None
    when it is not running (a lock file left by a dead server does not count)."""
    if server_pid(cluster) is None:
        return None
    try:
        return int(_lock_lines(cluster)[3])
    except (ValueError, IndexError):
        return None


def check_not_elsewhere(cluster: LocalCluster) -> bool:
    """True when the cluster is running already on the wanted port (so that port being in
    use is expected); a ClusterError when it runs on another one."""
    port = running_port(cluster)
    if port is None:
        return False
    if port != cluster.port:
        raise ClusterError(
            f"the embedded cluster in {cluster.data_dir} is already running on port {port}, "
            f"not {cluster.port}: pass --db-port {port} (or INTENT_DB_PORT={port}), or stop "
            f"it first with INTENT_DB_PORT={port} intent db stop"
        )
    return True


@dataclass(frozen=True)
class DatabaseUp:
    cluster: LocalCluster
    started_here: bool
    created: bool
    migrations: MigrationReport


def bring_up(
    cluster: LocalCluster,
    *,
    reset: bool,
    on_apply: Callable[[Migration], None] | None = None,
    ours: int | None = None,
) -> DatabaseUp:
    """Create (first time) and start the cluster unless it runs, optionally drop and recreate
    its database, then bootstrap and migrate. If this fails after starting the server, the
    server is stopped again before the error goes up. `ours`: the PID of a server an earlier
    `intent dev` started and never stopped (it was killed); found running, it counts as
    started here, so that this run stops it."""
    created = cluster.init()
    problem = clear_stale_lock(cluster)
    if problem is not None:
        raise ClusterError(f"cannot start the cluster in {cluster.data_dir}: {problem}; "
                           "wait for them to exit and try again")
    started_here = not cluster.running() or (ours is not None and cluster.pid() == ours)
    if started_here and not cluster.running():
        cluster.start()
    try:
        cluster.wait_ready()
        report = prepare(cluster, cluster.url, wipe=reset, on_apply=on_apply)
    except BaseException:
        if started_here:
            cluster.stop()
        raise
    return DatabaseUp(cluster, started_here, created, report)


def left_by_dead_dev(pid_file: Path) -> int | None:
    """The PostgreSQL PID an earlier `intent dev` recorded as started by itself, when that
    run is gone without stopping it (killed by SIGKILL, or the machine's OOM killer)."""
    try:
        record = json.loads(pid_file.read_text())
        dev_pid, pg_pid = int(record["dev"]), record.get("postgres")
        started = bool(record.get("postgres_started_by_dev"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not started or not isinstance(pg_pid, int) or process_exists(dev_pid):
        return None
    return pg_pid


def live_dev(pid_file: Path) -> int | None:
    """The PID of another `intent dev` still running on this state dir, if any."""
    try:
        pid = int(json.loads(pid_file.read_text())["dev"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() and process_exists(pid) else None


class Keeper:
    """Watches the stack's PostgreSQL for the supervisor, once per look, never blocking:
    one `intent dev` started is restarted when it goes away (launched, then polled until it
    serves; given up on as the restart policy says, when it keeps failing); one it found
    running is waited for, as long as it takes, since whoever started it owns it."""

    def __init__(
        self,
        cluster: LocalCluster,
        *,
        pid: int | None,
        restart: bool,
        say: Say,
        policy: RestartPolicy | None = None,
        start_timeout: float = 120.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.pid: int | None = pid
        self.restart = restart
        self.state = "up"  # "up", "restarting", "waiting", "lost"
        self._say = say
        self._policy = policy or RestartPolicy()
        self._start_timeout = start_timeout
        self._on_change = on_change
        self._up_since = time.monotonic()
        self._down_since = 0.0
        self._streak = 0
        self._next_attempt = 0.0
        self._launched_at: float | None = None
        self._attempts = 0
        self._last_said = 0.0
        self._lost = ""

    def __call__(self) -> DatabaseState:
        now = time.monotonic()
        if self.state == "lost":
            return DatabaseLost(self._lost)
        serving = serving_pid(self.cluster)
        if serving is not None:
            return self._serving(serving, now)
        if self.state == "up":
            self._gone(now)
        elif self.state == "restarting":
            self._restarting(now)
        else:
            # A zombie's lock file would make `intent db start` think it still runs.
            clear_stale_lock(self.cluster)
            if now - self._last_said >= STILL_WAITING_SECONDS:
                self._last_said = now
                self._say(f"postgres: still waiting for the server on 127.0.0.1:"
                          f"{self.cluster.port} (down for {now - self._down_since:.0f} s)")
        if self.state == "lost":
            return DatabaseLost(self._lost)
        return DatabaseDown(self.state)

    def _serving(self, pid: int, now: float) -> DatabaseHealthy:
        if self.state == "up":
            if pid != self.pid:  # restarted by someone else between two looks
                self._say(f"postgres: now pid {pid} (was {self.pid})")
                self.pid = pid
                self._changed()
            return DatabaseHealthy(pid)
        how = "restarted" if self.state == "restarting" else "back"
        self._say(f"postgres: {how}, pid {pid}, after {now - self._down_since:.1f} s down")
        self.state, self.pid, self._up_since = "up", pid, now
        self._launched_at = None
        self._changed()
        return DatabaseHealthy(pid)

    def _gone(self, now: float) -> None:
        self._down_since = self._last_said = now
        was = f"the server (pid {self.pid})"
        if not self.restart:
            self.state = "waiting"
            self._say(f"postgres: {was} is gone; it was running before `intent dev` started, "
                      "so whoever started it brings it back (e.g. `intent db start`): "
                      "waiting for it; the processes that need it wait too")
            self._changed()
            return
        self.state = "restarting"
        if not self._schedule(now, self._up_since, f"{was} is gone (log: "
                              f"{self.cluster.log_file})"):
            return
        self._say(f"postgres: {was} is gone; restarting it in "
                  f"{self._next_attempt - now:.1f} s; the processes that need it wait")
        self._changed()

    def _schedule(self, now: float, ran_since: float, what: str) -> bool:
        """The next start attempt as the policy says; False when it says give up."""
        decision = self._policy.decide(self._streak, now - ran_since)
        if isinstance(decision, GiveUp):
            self._lose(f"postgres: {what}; giving up on it: it failed {decision.streak} "
                       f"times in a row, each within {self._policy.quick_run:.0f} s of "
                       f"starting (log: {self.cluster.log_file})")
            return False
        self._streak = decision.streak
        self._next_attempt = now + decision.delay
        return True

    def _restarting(self, now: float) -> None:
        if self._launched_at is None:
            if now >= self._next_attempt:
                self._launch(now)
            return
        live = server_pid(self.cluster)
        if live is not None and live != self.pid:
            self.pid = live  # recorded at once: a dev killed now leaves it to the next run
            self._changed()
        took = now - self._launched_at
        if live is not None and took <= self._start_timeout:
            return  # starting: crash recovery, then "ready"
        if live is None and took <= LAUNCH_GRACE_SECONDS:
            return  # pg_ctl may not have written the lock file yet
        why = (f"did not accept connections within {self._start_timeout:.0f} s"
               if live is not None else "exited while starting")
        self._failed_attempt(now, why)

    def _launch(self, now: float) -> None:
        blocked = clear_stale_lock(self.cluster)
        if blocked is not None:
            if now - self._last_said >= 5.0:
                self._last_said = now
                self._say(f"postgres: not restarting yet: {blocked}")
            self._next_attempt = now + 0.5
            return
        self._attempts += 1
        self._say(f"postgres: starting the server again (attempt {self._attempts}), log "
                  f"{self.cluster.log_file}")
        try:
            self.cluster.start(wait=False)
        except ClusterError as exc:  # refused before launching: the message says why
            self._failed_attempt(now, f"failed: {exc}", launched=False)
            return
        self._launched_at = now

    def _failed_attempt(self, now: float, why: str, *, launched: bool = True) -> None:
        self._launched_at = None
        if live := server_pid(self.cluster):
            # Too slow: stop it, so that the next attempt starts from a clean state.
            try:
                self.cluster.stop(timeout=10)
            except ClusterError as exc:
                self._say(f"postgres: could not stop pid {live}: {exc}")
        for line in _server_log_tail(self.cluster) if launched else []:
            self._say(f"  | {line}")
        if self._schedule(now, now, f"the restart {why}"):
            self._say(f"postgres: the restart {why}; trying again in "
                      f"{self._next_attempt - now:.1f} s")

    def _lose(self, message: str) -> None:
        self.state, self._lost = "lost", message
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def stop(self, timeout: int) -> bool:
        """Stop the server (at exit); a lock file left by a dead one is removed first, so
        that pg_ctl does not wait for a zombie. True when a server was running."""
        clear_stale_lock(self.cluster)
        return self.cluster.stop(timeout=timeout)


def _server_log_tail(cluster: LocalCluster, lines: int = 6) -> list[str]:
    try:
        text = cluster.log_file.read_text(errors="replace")
    except OSError:
        return []
    return text.rstrip("\n").splitlines()[-lines:]
