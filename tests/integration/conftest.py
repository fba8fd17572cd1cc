"""Adapters wired to the session's throwaway cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from projections.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn, open_pool
from pump.store.events import PostgresEventStore
from pump.store.feed import GlobalFeed
from tests.support.db import runtime_url
from tests.support.projections import Made
from tests.support.tenants import Tenants


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    pool = await open_pool(database_url, min_size=2, max_size=20, name="tests")
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def runtime_pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    """A pool of the runtime's least-privilege role, for what the processes do."""
    pool = await open_pool(runtime_url(database_url), min_size=1, max_size=4, name="runtime")
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


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """One autocommit connection of the test's own, as the superuser."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
async def tenants(pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Tenants]:
    """Fresh tenants for one test; their commands are deleted afterwards."""
    made = Tenants()
    try:
        yield made
    finally:
        await made.forget(pool)
