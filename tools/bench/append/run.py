"""`intent bench append` from start to results: the four sections against one pool."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from rich.progress import Progress

from domain.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.connections import open_pool
from tools.bench.append.loads import AggregateLoads
from tools.bench.append.plan import Plan
from tools.bench.append.raw_table import create_raw_table, drop_raw_table
from tools.bench.append.results import Results
from tools.bench.append.throughput import Throughput
from tools.bench.database import server_facts


async def run_append(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    """All four sections against the migrated database at `url`, every stream under one
    fresh tenant (named in the results)."""
    started = datetime.now(UTC)
    server = await server_facts(url)
    tenant_id = uuid4()
    pool = await open_pool(url, min_size=plan.writers, max_size=plan.writers, name="bench")
    try:
        await create_raw_table(pool)
        try:
            repo = AggregateRepository(pool, registry)
            throughput = Throughput(pool, repo.events, plan, tenant_id, progress)
            single = await throughput.single_writer()
            concurrent = await throughput.concurrent_writers()
            batch = await throughput.batch_append()
            load = await AggregateLoads(pool, repo, plan, tenant_id, progress).aggregate_load()
        finally:
            await drop_raw_table(pool)
        server["tenant_id"] = str(tenant_id)
    finally:
        await pool.close()
    return Results(
        plan=plan, single=single, concurrent=concurrent, batch=batch, load=load,
        server=server, started_at=started, finished_at=datetime.now(UTC),
    )
