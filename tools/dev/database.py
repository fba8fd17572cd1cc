"""The stack's PostgreSQL: the embedded cluster under the state dir, as `intent db start`
runs it. pg_ctl runs the server detached, so it is not one of the supervisor's children:
`intent dev` stops it only when it started it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tools import settings
from tools.dev.stack import DevConfig
from tools.local_pg import ClusterError, LocalCluster
from tools.migrations import Migration, MigrationReport, apply_bootstrap, migrate


def embedded(config: DevConfig) -> LocalCluster:
    return LocalCluster(data_dir=config.pg_dir, port=config.db_port)


def running_port(cluster: LocalCluster) -> int | None:
    """The port of the cluster's running server (postmaster.pid's fourth line), or None
    when it is not running."""
    if not cluster.running():
        return None
    try:
        return int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, ValueError, IndexError):
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
    started_here = not cluster.running() or (ours is not None and cluster.pid() == ours)
    if started_here and not cluster.running():
        cluster.start()
    try:
        cluster.wait_ready()
        if reset:
            template = settings.local_url(
                cluster.port, user=settings.LOCAL_SUPERUSER, dbname="template1"
            )
            with psycopg.connect(template, autocommit=True) as conn:
                conn.execute("drop database if exists postgres with (force)")
                conn.execute("create database postgres")
        apply_bootstrap(cluster.admin_url)
        report = migrate(cluster.url, settings.migrations_dir(), on_apply=on_apply)
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
    if not started or not isinstance(pg_pid, int) or _running(dev_pid):
        return None
    return pg_pid


def live_dev(pid_file: Path) -> int | None:
    """The PID of another `intent dev` still running on this state dir, if any."""
    try:
        pid = int(json.loads(pid_file.read_text())["dev"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid != os.getpid() and _running(pid) else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gone(cluster: LocalCluster, pid: int | None) -> str | None:
    """A message when the server that was running as `pid` is no longer there."""
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    except PermissionError:
        return None  # alive, owned by another user
    else:
        if cluster.pid() == pid:
            return None
    return (
        f"postgres: the server (pid {pid}) is gone; giving up (its log is "
        f"{cluster.log_file})"
    )
