"""The /auth/v1 tests' gateways: one with GoTrue's defaults (no config.toml), one with a
config.toml that enables the test-defined hook and a reuse interval of 0 seconds. Each test
module starts its own (module scope) and, when done, checks it never failed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from tests.support.auth_api import HOOK, HOOK_SQL, WHOAMI, assert_no_server_errors
from tools.gateway.testing import RunningGateway, running_gateway


@pytest.fixture(scope="module")
def functions(database_url: str) -> Iterator[None]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(HOOK_SQL)
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"drop function if exists public.{HOOK}(jsonb);"
                     f" drop function if exists public.{WHOAMI}()")


@pytest.fixture(scope="module")
def gateway(database_url: str, functions: None) -> Iterator[RunningGateway]:
    with running_gateway(database_url) as running:
        yield running
    assert_no_server_errors(running)


@pytest.fixture(scope="module")
def hooked(database_url: str, functions: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningGateway]:
    """A gateway whose config.toml enables the test's hook and has no reuse interval."""
    config = Path(tmp_path_factory.mktemp("auth")) / "config.toml"
    config.write_text(
        "[auth]\nrefresh_token_reuse_interval = 0\njwt_expiry = 600\n"
        "[auth.hook.custom_access_token]\nenabled = true\n"
        f'uri = "pg-functions://postgres/public/{HOOK}"\n')
    with running_gateway(database_url, functions_config=config) as running:
        yield running
    assert_no_server_errors(running, hook_failures=1)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
