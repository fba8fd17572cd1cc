"""The command pipeline without Temporal: claim, batch, decide, append, record, exactly once.

The same batch code runs inside the Temporal worker; these tests pin down its guarantees
with the pump's direct mode against a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from projections.shop import registry
from pump.batches.processor import BatchProcessor
from pump.batches.pump import DirectDispatcher, Pump, PumpSettings
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.pipeline import (
    assert_once_in_order,
    enqueue,
    events_by_stream,
    running_pumps,
    statuses,
    wait_terminal,
)
from tests.support.streams import new_stream
from tests.support.tenants import TENANT_A, TENANT_B

pytestmark = pytest.mark.integration


async def test_commands_from_many_writers_are_processed_once_in_submission_order(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    streams = [new_stream(TENANT_A if i % 2 else TENANT_B) for i in range(8)]
    # each item exists before the stream of receipts starts
    ids = [await enqueue(pool, s, "register_item", sku="S", name="Widget") for s in streams]

    async def writer(seed: int) -> None:
        rng, user = random.Random(seed), uuid4()
        for _ in range(20):
            stream = rng.choice(streams)
            ids.append(await enqueue(pool, stream, "receive_stock", user_id=user,
                                     quantity=rng.randint(1, 9)))

    async with running_pumps(pool, database_url, count=2, batch_limit=16, concurrency=3):
        await asyncio.gather(*(writer(seed) for seed in range(8)))
        final = await wait_terminal(pool, ids)
    assert set(final.values()) == {"processed"}
    await assert_once_in_order(pool, [s.aggregate_id for s in streams], ids)


async def test_a_domain_rejection_is_recorded_once_and_appends_nothing(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    stream = new_stream()
    register = await enqueue(pool, stream, "register_item", sku="S", name="Widget")
    reserve = await enqueue(pool, stream, "reserve_stock", order_id=uuid4(), quantity=5)
    async with running_pumps(pool, database_url):
        final = await wait_terminal(pool, [register, reserve])
    assert final == {register: "processed", reserve: "rejected"}
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select error, attempts, result from intent.commands where command_id = %s",
            (reserve,),
        )).fetchone()
    assert row is not None
    error, attempts, result = row
    assert error["code"] == "insufficient_stock"
    assert "only 0 available" in error["reason"]
    assert attempts == 1
    assert result is None
    assert [v for v, _, _ in (await events_by_stream(pool, [stream.aggregate_id]))[
        stream.aggregate_id]] == [1]


async def test_a_crash_before_commit_leaves_nothing_and_the_retry_completes_once(
    pool: AsyncConnectionPool[Conn],
) -> None:
    stream = new_stream()
    ids = [await enqueue(pool, stream, "register_item", sku="S", name="W")]
    ids += [await enqueue(pool, stream, "receive_stock", quantity=q) for q in (1, 2, 3)]
    store = PostgresCommandStore(pool)
    batch = await store.claim(100)
    assert batch is not None
    assert set(ids) <= set(batch.command_ids)
    processor = BatchProcessor(pool, registry)

    class WorkerDiedError(Exception):
        pass

    def crash() -> None:
        raise WorkerDiedError

    with pytest.raises(WorkerDiedError):
        await processor.process(batch.batch_id, before_commit=crash)
    assert (await events_by_stream(pool, [stream.aggregate_id]))[stream.aggregate_id] == []
    first, second = await asyncio.gather(
        processor.process(batch.batch_id), processor.process(batch.batch_id)
    )
    assert sorted([first.skipped, second.skipped]) == [False, True]
    assert first.events + second.events == 4
    rows = (await events_by_stream(pool, [stream.aggregate_id]))[stream.aggregate_id]
    assert [v for v, _, _ in rows] == [1, 2, 3, 4]
    again = await processor.process(batch.batch_id)
    assert again.skipped


async def test_a_batch_abandoned_by_its_pump_is_swept_and_completed(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    stream = new_stream()
    ids = [await enqueue(pool, stream, "register_item", sku="S", name="W"),
           await enqueue(pool, stream, "receive_stock", quantity=4)]
    abandoned = await PostgresCommandStore(pool).claim(100)  # a pump that died after claiming
    assert abandoned is not None
    await asyncio.sleep(0.5)
    async with running_pumps(pool, database_url, sweep_after=timedelta(seconds=0.3)):
        final = await wait_terminal(pool, ids, seconds=30)
    assert set(final.values()) == {"processed"}
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select status, dispatches from intent.batches where batch_id = %s",
            (abandoned.batch_id,),
        )).fetchone()
    assert row is not None
    assert row[0] == "done"
    assert row[1] >= 2


async def test_infrastructure_failures_are_retried_then_recorded_as_failed(
    pool: AsyncConnectionPool[Conn], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = new_stream()
    command = await enqueue(pool, stream, "register_item", sku="S", name="W")
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    processor = BatchProcessor(pool, registry)
    calls = 0

    async def broken(batch_id: UUID, **_: object) -> object:
        nonlocal calls
        calls += 1
        raise psycopg.errors.SerializationFailure("could not serialize access")

    monkeypatch.setattr(processor, "process", broken)
    await DirectDispatcher(processor, max_attempts=3, first_backoff=0.01).dispatch(
        batch.batch_id
    )
    assert calls == 3
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select status, error from intent.commands where command_id = %s", (command,)
        )).fetchone()
    assert row is not None
    assert row[0] == "failed"
    assert row[1]["attempt"] == 3
    assert "could not serialize" in row[1]["message"]


async def test_an_unreachable_database_does_not_use_up_a_batchs_attempts(
    pool: AsyncConnectionPool[Conn], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = new_stream()
    command = await enqueue(pool, stream, "register_item", sku="S", name="W")
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    processor = BatchProcessor(pool, registry)
    real, calls = processor.process, 0

    async def away_for_a_while(batch_id: UUID, **options: bool | int) -> object:
        nonlocal calls
        calls += 1
        if calls <= 6:  # more outages than the batch has attempts
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await real(batch_id, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(processor, "process", away_for_a_while)
    await DirectDispatcher(processor, max_attempts=3, first_backoff=0.01).dispatch(
        batch.batch_id
    )
    assert calls == 7
    assert (await statuses(pool, [command]))[command] == "processed"


async def test_a_long_outage_leaves_the_batch_open_for_the_sweep(
    pool: AsyncConnectionPool[Conn], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = new_stream()
    command = await enqueue(pool, stream, "register_item", sku="S", name="W")
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    processor = BatchProcessor(pool, registry)

    async def away(batch_id: UUID, **_: object) -> object:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(processor, "process", away)
    with pytest.raises(psycopg.OperationalError):
        await DirectDispatcher(processor, first_backoff=0.01,
                               unavailable_seconds=0.2).dispatch(batch.batch_id)
    assert (await statuses(pool, [command]))[command] == "dispatched"
    monkeypatch.undo()
    await processor.process(batch.batch_id)
    assert (await statuses(pool, [command]))[command] == "processed"


class StuckDispatcher:
    """A dispatch that never returns (a database outage, a worker that never answers)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def dispatch(self, batch_id: UUID) -> None:
        self.started.set()
        await asyncio.Event().wait()


async def test_a_stopping_pump_leaves_a_stuck_batch_to_the_sweep_after_its_grace(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    command = await enqueue(pool, new_stream(), "register_item", sku="S", name="W")
    dispatcher, stop = StuckDispatcher(), asyncio.Event()
    pump = Pump(pool, database_url, dispatcher,
                PumpSettings(poll_interval=0.1, stop_grace=0.2))
    task = asyncio.create_task(pump.run(stop))
    await asyncio.wait_for(dispatcher.started.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(task, timeout=10)  # without the grace: waits forever
    assert (await statuses(pool, [command]))[command] == "dispatched"
    async with pool.connection() as conn:  # finish it, so no later test's pump finds it
        row = await (await conn.execute(
            "select batch_id from intent.commands where command_id = %s", (command,)
        )).fetchone()
    assert row is not None
    await BatchProcessor(pool, registry).process(row[0])
    assert (await statuses(pool, [command]))[command] == "processed"
