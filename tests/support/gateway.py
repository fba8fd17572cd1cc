"""The local gateway as the gateway tests start it: with the fixture functions of
tests/fixtures/functions (echo answers with what it received; crash exits on /crash/exit)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tools.gateway.testing import RunningGateway, running_gateway
from tools.settings import REPO_ROOT

FIXTURE_FUNCTIONS = REPO_ROOT / "tests" / "fixtures" / "functions"


@contextmanager
def fixture_functions_gateway(database_url: str) -> Iterator[RunningGateway]:
    """A gateway process serving REST, Realtime and the fixture functions."""
    with running_gateway(database_url, functions_dir=FIXTURE_FUNCTIONS,
                         functions_config=FIXTURE_FUNCTIONS / "config.toml") as running:
        yield running
