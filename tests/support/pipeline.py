"""Support for pipeline tests: enqueue commands, run pumps (direct, or through Temporal's
batch workers), wait for outcomes, and check the events they caused."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Metadata, StreamId
from domain.registry import Registry
from projections.shop import catalog, registry
from pump.batches.processor import BatchProcessor
from pump.batches.pump import DirectDispatcher, Pump, PumpSettings
from pump.batches.temporal import TemporalDispatcher, build_worker
from pump.projections.inline import InlineProjections
from pump.store.connections import Conn

TERMINAL = ("processed", "rejected", "failed")


def shop_processor(pool: AsyncConnectionPool[Conn], **options: Any) -> BatchProcessor:
    """The example shop's batch processor, with its inline projections (stock_levels...)."""
    return BatchProcessor(pool, registry, inline=InlineProjections(catalog, registry=registry),
                          **options)


async def enqueue(
    pool: AsyncConnectionPool[Conn],
    stream: StreamId,
    kind: str,
    *,
    command_id: UUID | None = None,
    user_id: UUID | None = None,
    app_registry: Registry = registry,
    **payload: Any,
) -> UUID:
    """Insert a pending command the way the runtime's own writers (sagas) do. `kind` is a
    full command type of `app_registry` (default: the example shop's), or an inventory
    command's short name."""
    command_id = command_id or uuid4()
    command_type = kind if "." in kind else f"inventory.{kind}"
    id_field = app_registry.command_type(command_type).aggregate_id_field
    body = {id_field: str(stream.aggregate_id), **{k: str(v) if isinstance(v, UUID) else v
                                                   for k, v in payload.items()}}
    metadata = Metadata(tenant_id=stream.tenant_id, user_id=user_id, correlation_id=uuid4())
    async with pool.connection() as conn:
        await conn.execute(
            "insert into intent.commands (command_id, tenant_id, user_id, role, command_type,"
            " aggregate_type, aggregate_id, payload, metadata) values (%s, %s, %s,"
            " 'authenticated', %s, %s, %s, %s::jsonb, %s::jsonb)"
            " on conflict (command_id) do nothing",
            (command_id, stream.tenant_id, user_id, command_type, stream.aggregate_type,
             stream.aggregate_id, _json(body), metadata.model_dump_json()),
        )
    return command_id


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)


async def statuses(pool: AsyncConnectionPool[Conn], ids: Sequence[UUID]) -> dict[UUID, str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select command_id, status from intent.commands where command_id = any(%s)",
            (list(ids),),
        )
        return {row[0]: row[1] for row in await cur.fetchall()}


async def wait_terminal(
    pool: AsyncConnectionPool[Conn], ids: Sequence[UUID], *, seconds: float = 60
) -> dict[UUID, str]:
    """Poll until every command is terminal (bounded: fails the test after `seconds`)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        now = await statuses(pool, ids)
        if len(now) == len(set(ids)) and all(s in TERMINAL for s in now.values()):
            return now
        if asyncio.get_running_loop().time() > deadline:
            open_ = {k: v for k, v in now.items() if v not in TERMINAL}
            raise AssertionError(f"{len(open_)} command(s) still open after {seconds}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_pumps(
    pool: AsyncConnectionPool[Conn], url: str, count: int = 1, *,
    processor: BatchProcessor | None = None, **settings: Any,
) -> AsyncIterator[list[Pump]]:
    """`count` direct-mode pumps sharing nothing but the database (and `processor`, when
    given; else each has the example shop's own); stopped on exit."""
    stop = asyncio.Event()
    pumps = [
        Pump(pool, url, DirectDispatcher(processor or BatchProcessor(pool, registry)),
             PumpSettings(**({"poll_interval": 0.2} | settings)))
        for _ in range(count)
    ]
    tasks = [asyncio.create_task(p.run(stop)) for p in pumps]
    try:
        yield pumps
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


@asynccontextmanager
async def temporal_pipeline(
    pool: AsyncConnectionPool[Conn], url: str, env: WorkflowEnvironment, *, pumps: int = 1,
    workers: int = 1, processor: Callable[[], BatchProcessor] | None = None,
    queue: str = "intent-test", **settings: Any,
) -> AsyncIterator[str]:
    """Pumps and batch workers as `intent pump` and `intent worker` run them, in this loop,
    on a task queue of their own (yielded); stopped on exit. Each worker has its own client,
    as separate worker processes would have (the SDK allows one worker per client and task
    queue), and its own processor (`processor()`, else the example shop's)."""
    task_queue = f"{queue}-{uuid4().hex[:8]}"
    stop = asyncio.Event()
    clients = [env.client] + [
        await Client.connect(env.client.service_client.config.target_host,
                             data_converter=pydantic_data_converter)
        for _ in range(workers - 1)
    ]
    make = processor or (lambda: BatchProcessor(pool, registry))
    running = [build_worker(c, make(), task_queue) for c in clients]
    worker_tasks = [asyncio.create_task(w.run()) for w in running]
    pump_tasks = [
        asyncio.create_task(
            Pump(pool, url, TemporalDispatcher(env.client, task_queue),
                 PumpSettings(**({"poll_interval": 0.2} | settings))).run(stop)
        )
        for _ in range(pumps)
    ]
    try:
        yield task_queue
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*pump_tasks), timeout=30)
        for worker in running:
            await worker.shutdown()
        await asyncio.gather(*worker_tasks, return_exceptions=True)


async def events_by_stream(
    pool: AsyncConnectionPool[Conn], aggregate_ids: list[UUID]
) -> dict[UUID, list[tuple[int, int, UUID]]]:
    """aggregate id -> [(version, seq of the causing command, command id)] in version order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select e.aggregate_id, e.version, c.seq, c.command_id from intent.events e"
            " join intent.commands c on c.command_id = (e.metadata ->> 'causation_id')::uuid"
            " where e.aggregate_id = any(%s) order by e.aggregate_id, e.version",
            (aggregate_ids,),
        )
        found: dict[UUID, list[tuple[int, int, UUID]]] = defaultdict(list)
        for aggregate_id, version, seq, command_id in await cur.fetchall():
            found[aggregate_id].append((version, seq, command_id))
        return found


async def assert_once_in_order(
    pool: AsyncConnectionPool[Conn],
    aggregate_ids: list[UUID],
    commands: Collection[UUID],
    *,
    length: int | None = None,
) -> None:
    """The pipeline's promise, checked on the events themselves: per aggregate, versions
    1..n with no gap (n = `length` when given) and, for each writer (the command's user),
    in the order that writer submitted them; every command in `commands` caused events
    exactly once, and no other command did.

    Commands of concurrent writers have no order between them: a command's sequence number
    is taken at insert, and two inserts may commit in either order, so the pump may see the
    higher number first. Each writer here submits one command after the other."""
    history = await events_by_stream(pool, aggregate_ids)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select command_id, user_id from intent.commands where command_id = any(%s)",
            ([command_id for rows in history.values() for _, _, command_id in rows],),
        )
        writer_of = {command_id: user_id for command_id, user_id in await cur.fetchall()}
    for aggregate_id in aggregate_ids:
        rows = history[aggregate_id]
        versions = [version for version, _, _ in rows]
        assert versions == list(range(1, (length or len(rows)) + 1)), "a gap or a duplicate"
        by_writer: dict[UUID | None, list[int]] = defaultdict(list)
        for _, seq, command_id in rows:
            by_writer[writer_of[command_id]].append(seq)
        for seqs in by_writer.values():
            assert seqs == sorted(seqs), "a later command overtook an earlier one"
    causes = [command_id for rows in history.values() for _, _, command_id in rows]
    assert len(causes) == len(set(causes)), "a command ran twice"
    assert set(causes) == set(commands)
