"""Adapters wired to the session's throwaway cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.app import registry
from pump.aggregates import AggregateRepository
from pump.database import Conn, open_pool
from pump.event_store import PostgresEventStore
from pump.feed import GlobalFeed
from tests.integration.projection_kit import Made


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    pool = await open_pool(database_url, min_size=2, max_size=20, name="tests")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def store(pool: AsyncConnectionPool[Conn]) -> PostgresEventStore:
    return PostgresEventStore(pool, registry)


@pytest.fixture
def repo(pool: AsyncConnectionPool[Conn]) -> AggregateRepository:
    return AggregateRepository(pool, registry)


@pytest.fixture
def feed(pool: AsyncConnectionPool[Conn]) -> GlobalFeed:
    return GlobalFeed(pool)


@pytest.fixture
async def made(pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Made]:
    helper = Made(pool)
    try:
        yield helper
    finally:
        await helper.drop_all()
