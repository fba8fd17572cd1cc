"""Support for pipeline tests: enqueue commands, run pumps, wait for outcomes."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

from psycopg_pool import AsyncConnectionPool

from domain.app import registry
from domain.contracts import Metadata, StreamId
from pump.batch_processor import BatchProcessor
from pump.database import Conn
from pump.pump import DirectDispatcher, Pump, PumpSettings

TERMINAL = ("processed", "rejected", "failed")


async def enqueue(
    pool: AsyncConnectionPool[Conn],
    stream: StreamId,
    kind: str,
    *,
    command_id: UUID | None = None,
    user_id: UUID | None = None,
    **payload: Any,
) -> UUID:
    """Insert a pending command the way the runtime's own writers (sagas) do. `kind` is a
    full command type, or an inventory command's short name."""
    command_id = command_id or uuid4()
    command_type = kind if "." in kind else f"inventory.{kind}"
    id_field = registry.command_type(command_type).aggregate_id_field
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
    pool: AsyncConnectionPool[Conn], url: str, count: int = 1, **settings: Any
) -> AsyncIterator[list[Pump]]:
    """`count` direct-mode pumps sharing nothing but the database; stopped on exit."""
    stop = asyncio.Event()
    pumps = [
        Pump(pool, url, DirectDispatcher(BatchProcessor(pool, registry)),
             PumpSettings(**({"poll_interval": 0.2} | settings)))
        for _ in range(count)
    ]
    tasks = [asyncio.create_task(p.run(stop)) for p in pumps]
    try:
        yield pumps
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)


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
