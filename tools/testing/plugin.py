"""Intent's pytest plugin, installed with the package (entry point `pytest11`: `intent`).

Fixtures, each started only when a test asks for it:

  intent_postgres       a throwaway PostgreSQL 15 cluster, bootstrapped and migrated like
                        the embedded one, once per session, removed at the end
  intent_database_url   its URL (as the superuser)
  intent_pool           an async pool on it, once per session
  intent_projections    a ProjectionKit (tools/testing/projections.py) for the application
                        pyproject.toml names, its copies dropped after the test

It declares the `integration` marker (tests that need the real database), which the tests
`intent new` writes carry, so a project with --strict-markers need not declare it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn, open_pool
from tools.cli.application import load_application
from tools.local.cluster import LocalCluster, scratch_cluster
from tools.testing.projections import ProjectionKit


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs a real PostgreSQL (Intent's plugin starts one)")


@pytest.fixture(scope="session")
def intent_postgres() -> Iterator[LocalCluster]:
    with scratch_cluster(throwaway=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def intent_database_url(intent_postgres: LocalCluster) -> str:
    return intent_postgres.url


@pytest.fixture(scope="session")
async def intent_pool(intent_database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    pool = await open_pool(intent_database_url, min_size=1, max_size=10, name="intent-tests")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def intent_projections(intent_pool: AsyncConnectionPool[Conn]
                             ) -> AsyncIterator[ProjectionKit]:
    kit = ProjectionKit(intent_pool, load_application().registry)
    try:
        yield kit
    finally:
        await kit.close()
