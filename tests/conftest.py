"""Session fixtures: real services started once per test session and removed afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools import settings
from tools.local_pg import LocalCluster
from tools.migrations import apply_bootstrap, migrate


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    """A throwaway PostgreSQL 15 cluster, bootstrapped and migrated like the embedded one."""
    parent = Path(tempfile.mkdtemp(prefix="intent-test-pg-"))
    parent.chmod(0o755)  # the `postgres` OS user runs the server when we are root
    cluster = LocalCluster(data_dir=parent / "pg", port=free_port(), throwaway=True)
    try:
        cluster.init()
        cluster.start()
        cluster.wait_ready()
        apply_bootstrap(cluster.admin_url)
        migrate(cluster.url, settings.migrations_dir())
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_cluster: LocalCluster) -> str:
    return pg_cluster.url


@pytest.fixture(autouse=True)
def _no_ambient_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their database explicitly; a developer's DATABASE_URL must not leak in."""
    if "DATABASE_URL" in os.environ:
        monkeypatch.delenv("DATABASE_URL")
