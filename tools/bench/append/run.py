"""`intent bench append` from start to results: six workloads against one pool."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress

from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn, open_pool
from tools.bench.append.account import Account, application, decided, new_account
from tools.bench.append.loads import Loads
from tools.bench.append.plan import Plan
from tools.bench.append.raw import create_raw_table, drop_raw_table, json_bytes, raw_rows
from tools.bench.append.results import Results, Workload
from tools.bench.append.writes import Writes
from tools.bench.broadcast import Broadcast, broadcast_as_shipped
from tools.bench.database import server_facts


async def run_append(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    """Every workload against the migrated database at `url`, every stream under one fresh
    tenant (named in the results), broadcast on as the database ships it."""
    started = datetime.now(UTC)
    server = await server_facts(url)
    tenant_id = uuid4()
    server["tenant_id"] = str(tenant_id)
    pool = await open_pool(url, min_size=plan.writers, max_size=plan.writers, name="bench")
    try:
        await create_raw_table(pool)
        try:
            async with broadcast_as_shipped(url, pool) as broadcast:
                workloads, build = await _workloads(pool, broadcast, plan, tenant_id, progress)
                broadcast_json = broadcast.as_json()
        finally:
            await drop_raw_table(pool)
    finally:
        await pool.close()
    return Results(
        plan=plan, workloads=workloads, broadcast=broadcast_json,
        json_sizes=_json_sizes(tenant_id), build=build, server=server,
        started_at=started, finished_at=datetime.now(UTC),
    )


async def _workloads(
    pool: AsyncConnectionPool[Conn], broadcast: Broadcast, plan: Plan, tenant_id: UUID,
    progress: Progress | None,
) -> tuple[list[Workload], dict[str, Any]]:
    repo = AggregateRepository(pool, application.registry)
    writes = Writes(pool, repo, broadcast, plan.rounds, tenant_id, progress)
    workloads = [await writes.measure(spec) for spec in plan.write_specs()]
    loads = Loads(pool, repo, plan, tenant_id, progress)
    tail = await loads.build(plan.tail_length)
    replay = await loads.build(plan.replay_length)
    drained = await broadcast.drain()  # before any load is timed
    workloads += [await loads.tail(tail), await loads.replay(replay)]
    build = {
        "how": (
            "AggregateRepository.save of the decided events in appends of up to "
            f"{Account.snapshot_every} (a snapshot at every multiple of "
            f"{Account.snapshot_every}), and one COPY of the same rows per RAW stream"
        ),
        "w5_stream": {"events": tail.expected[0], "snapshot_version": tail.snapshot_version},
        "w5p_stream": {"events": replay.expected[0]},
        "relay_drain_after_build_s": round(drained.seconds, 4) if drained else None,
    }
    return workloads, build


def _json_sizes(tenant_id: UUID) -> dict[str, float]:
    """The mean JSON size of an event's payload and metadata (both sides carry the same)."""
    events, _ = decided(new_account(tenant_id), 100)
    payload, metadata = json_bytes(raw_rows(events))
    return {"payload": payload, "metadata": metadata}
