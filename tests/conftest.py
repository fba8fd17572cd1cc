"""Session fixtures: real services started once per test session and removed afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tools.local_pg import LocalCluster, scratch_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    """A throwaway PostgreSQL 15 cluster, bootstrapped and migrated like the embedded one."""
    with scratch_cluster(throwaway=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def database_url(pg_cluster: LocalCluster) -> str:
    return pg_cluster.url


@pytest.fixture(autouse=True)
def _no_ambient_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their database explicitly; a developer's DATABASE_URL must not leak in."""
    if "DATABASE_URL" in os.environ:
        monkeypatch.delenv("DATABASE_URL")
