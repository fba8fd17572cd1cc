"""Inline projections: applied in the appending transaction, strict about order, and rebuilt
while the worker keeps writing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from domain.contracts import Event
from projections.errors import ProjectionError, StaleWriteError
from projections.inventory import STOCK_LEVELS
from projections.metadata import Column, Op, Table, Upsert
from projections.shop import registry
from pump.projections.inline import InlineProjections
from pump.projections.rebuild import Rebuilder
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from tests.support.feed import checkpoint_of, head
from tests.support.projections import Made, fresh, table_rows
from tests.support.streams import append, new_stream, received, registered

pytestmark = pytest.mark.integration




async def test_inline_rows_commit_and_roll_back_with_the_append(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS))
    inline = InlineProjections(
        [projection, await made.create(fresh(STOCK_LEVELS, mode="async"))], registry=registry
    )
    assert [p.name for p in inline.projections] == [projection.name]
    tenant = uuid4()
    kept, lost = new_stream(tenant), new_stream(tenant)
    async with pool.connection() as conn:
        async with conn.transaction():
            events = await append(store, [registered(kept), received(kept, 2, 4)], conn=conn)
            await inline.apply(conn, events)
            inside = await conn.execute(
                f'select available from "{projection.schema_name}".stock_levels where item_id = %s',
                (kept.aggregate_id,),
            )
            assert await inside.fetchone() == (4,)
        await conn.execute("begin")
        await inline.apply(conn, await append(store, [registered(lost)], conn=conn))
        await conn.execute("rollback")
    rows = await table_rows(pool, projection, tenant=tenant)
    assert [(r[1], r[4]) for r in rows] == [(kept.aggregate_id, 4)]
    assert rows[0][-2:] == (events[-1].transaction_id, events[-1].position)


async def test_inline_refuses_events_that_were_never_stored(
    pool: AsyncConnectionPool[Conn], made: Made
) -> None:
    inline = InlineProjections([await made.create(fresh(STOCK_LEVELS))], registry=registry)
    async with pool.connection() as conn:
        with pytest.raises(ProjectionError, match="no feed position"):
            await inline.apply(conn, [registered(new_stream(uuid4()))])


def tenant_counter(event: Event, payload: BaseModel) -> Sequence[Op]:
    return [Upsert(table="tenant_events", key={}, add={"events": 1})]


TENANT_EVENTS = Table(
    name="tenant_events",
    columns=(Column(name="tenant_id", type="uuid", nullable=False),
             Column(name="events", type="bigint", nullable=False, default=0)),
    primary_key=("tenant_id",),
)


async def test_a_row_written_first_by_a_later_transaction_fails_the_earlier_one(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    """Transaction ids order the feed; the earlier one must not drop its count silently."""
    projection = await made.create(fresh(
        STOCK_LEVELS, tables=(TENANT_EVENTS,), handler=tenant_counter,
        reads=("inventory.item_registered",),
    ))
    inline = InlineProjections([projection], registry=registry)
    tenant = uuid4()
    early_stream, late_stream = new_stream(tenant), new_stream(tenant)
    async with pool.connection() as early:
        await early.execute("begin")
        early_events = await append(store, [registered(early_stream)], conn=early)
        async with pool.connection() as late, late.transaction():
            late_events = await append(store, [registered(late_stream)], conn=late)
            await inline.apply(late, late_events)
        assert early_events[0].transaction_id < late_events[0].transaction_id  # type: ignore[operator]
        with pytest.raises(StaleWriteError, match="newer event"):
            await inline.apply(early, early_events)
        await early.execute("rollback")
    async with pool.connection() as retry, retry.transaction():
        await inline.apply(retry, await append(store, [registered(early_stream)], conn=retry))
    rows = await table_rows(pool, projection, tenant=tenant)
    assert [r[1] for r in rows] == [2]


async def test_rebuilding_an_inline_projection_waits_for_the_worker_and_keeps_its_writes(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS))
    inline = InlineProjections([projection], registry=registry)
    start = await head(pool)
    tenant = uuid4()
    item, other, later = new_stream(tenant), new_stream(tenant), new_stream(tenant)

    async def worker(events: list[Event], conn: Conn | None = None) -> None:
        if conn is not None:
            await inline.apply(conn, events)
            return
        async with pool.connection() as c, c.transaction():
            await inline.apply(c, events)

    async with pool.connection() as c, c.transaction():
        await worker(await append(store, [registered(item), received(item, 2, 3)], conn=c), c)
    rebuilder = Rebuilder(pool, projection, lock_timeout=10, registry=registry)
    await rebuilder.prepare(start)
    position = await rebuilder.catch_up(start)
    async with pool.connection() as held:
        # A batch in flight that has written the live table...
        await held.execute("begin")
        await worker(await append(store, [received(item, 3, 4)], expected=2, conn=held), held)
        # ...and one that has appended but not written it yet.
        async with pool.connection() as pending:
            await pending.execute("begin")
            pending_events = await append(store, [registered(other)], conn=pending)
            swapping = asyncio.create_task(rebuilder.swap(position))
            await asyncio.sleep(0.5)
            assert not swapping.done(), "the swap must wait for the batch holding the table"
            await held.execute("commit")
            end, attempts = await swapping
            assert attempts == 1
            await worker(pending_events, pending)
            await pending.execute("commit")
    await worker(await append(store, [registered(later)]))
    rows = await table_rows(pool, projection, tenant=tenant)
    assert {r[1]: r[4] for r in rows} == {
        item.aggregate_id: 7, other.aggregate_id: 0, later.aggregate_id: 0,
    }
    assert (await checkpoint_of(pool, projection.consumer)).position == end


async def test_two_batches_creating_the_same_row_at_once_fail_the_second_for_a_retry(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(
        STOCK_LEVELS, tables=(TENANT_EVENTS,), handler=tenant_counter,
        reads=("inventory.item_registered",),
    ))
    inline = InlineProjections([projection], registry=registry)
    tenant = uuid4()
    first_stream, second_stream = new_stream(tenant), new_stream(tenant)
    async with pool.connection() as first, pool.connection() as second:
        await first.execute("begin")
        await inline.apply(first, await append(store, [registered(first_stream)], conn=first))
        await second.execute("begin")
        second_events = await append(store, [registered(second_stream)], conn=second)
        blocked = asyncio.create_task(inline.apply(second, second_events))
        await asyncio.sleep(0.3)
        assert not blocked.done()
        await first.execute("commit")
        with pytest.raises(StaleWriteError, match="created one of these rows first"):
            await blocked
        await second.execute("rollback")
    async with pool.connection() as retry, retry.transaction():
        await inline.apply(retry, await append(store, [registered(second_stream)], conn=retry))
    assert [r[1] for r in await table_rows(pool, projection, tenant=tenant)] == [2]
