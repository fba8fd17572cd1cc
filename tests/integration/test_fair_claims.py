"""Claims take tenants in turns: a tenant's backlog never makes another tenant's lone
command wait behind it, and each aggregate's commands are still claimed in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from projections.shop import registry
from pump.batches.processor import BatchProcessor
from pump.batches.pump import Pump, PumpSettings
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.pipeline import enqueue, statuses, wait_terminal
from tests.support.streams import new_stream
from tests.support.tenants import TENANT_A, TENANT_B, TENANT_C

pytestmark = pytest.mark.integration


async def drain(pool: AsyncConnectionPool[Conn]) -> None:
    """Process whatever is pending, so that each test starts from an empty queue."""
    store, worker = PostgresCommandStore(pool), BatchProcessor(pool, registry)
    while (batch := await store.claim(500)) is not None:
        await worker.process(batch.batch_id)


async def test_a_lone_command_of_another_tenant_is_in_the_first_batch_behind_a_backlog(
    pool: AsyncConnectionPool[Conn],
) -> None:
    await drain(pool)
    backlog = [await enqueue(pool, new_stream(TENANT_A), "register_item", sku="F", name="F")
               for _ in range(120)]
    lone = await enqueue(pool, new_stream(TENANT_B), "register_item", sku="L", name="Lone")
    store = PostgresCommandStore(pool)
    first = await store.claim(25)
    assert first is not None
    assert lone in first.command_ids
    assert len(first.command_ids) == 25
    # The rest of the batch is tenant A's oldest commands, in submission order.
    assert set(first.command_ids) - {lone} == set(backlog[:24])
    await BatchProcessor(pool, registry).process(first.batch_id)
    await drain(pool)


async def test_tenants_take_turns_and_an_aggregate_stays_a_prefix_in_order(
    pool: AsyncConnectionPool[Conn],
) -> None:
    await drain(pool)
    busy = new_stream(TENANT_A)
    ordered = [await enqueue(pool, busy, "register_item", sku="O", name="O")]
    ordered += [await enqueue(pool, busy, "receive_stock", quantity=q) for q in range(1, 6)]
    others = {tenant: [await enqueue(pool, new_stream(tenant), "register_item", sku="T",
                                     name="T") for _ in range(2)]
              for tenant in (TENANT_B, TENANT_C)}
    batch = await PostgresCommandStore(pool).claim(6)
    assert batch is not None
    claimed = set(batch.command_ids)
    # Two turns of three tenants: each tenant's two oldest commands.
    assert claimed == {*ordered[:2], *others[TENANT_B], *others[TENANT_C]}
    # The aggregate's commands after the claimed prefix wait for its batch to finish.
    assert await PostgresCommandStore(pool).claim(6) is None
    await BatchProcessor(pool, registry).process(batch.batch_id)
    await drain(pool)
    async with pool.connection() as conn:
        rows = await (await conn.execute(
            "select (payload->>'quantity')::int from intent.events"
            " where aggregate_id = %s and event_type = 'inventory.stock_received'"
            " order by version", (busy.aggregate_id,),
        )).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]


async def test_the_claim_skips_an_aggregate_in_flight_but_not_its_tenant(
    pool: AsyncConnectionPool[Conn],
) -> None:
    await drain(pool)
    held, free = new_stream(TENANT_A), new_stream(TENANT_A)
    await enqueue(pool, held, "register_item", sku="H", name="H")
    store = PostgresCommandStore(pool)
    in_flight = await store.claim(10)
    assert in_flight is not None
    behind = await enqueue(pool, held, "receive_stock", quantity=1)
    other = await enqueue(pool, free, "register_item", sku="F", name="F")
    extra = await enqueue(pool, new_stream(TENANT_B), "register_item", sku="B", name=str(uuid4()))
    second = await store.claim(10)
    assert second is not None
    assert set(second.command_ids) == {other, extra}
    assert behind not in second.command_ids
    for claimed in (in_flight, second):
        await BatchProcessor(pool, registry).process(claimed.batch_id)
    await drain(pool)


class HeldDispatcher:
    """Processes batches directly, but holds every batch that has a command of `held_tenant`
    until `release` is set: a flood that keeps every slot busy, without timing."""

    def __init__(self, pool: AsyncConnectionPool[Conn], held_tenant: UUID, slots: int):
        self._processor = BatchProcessor(pool, registry)
        self._pool, self._held = pool, held_tenant
        self.release = asyncio.Event()
        self.slots_full = asyncio.Event()  # `slots` batches are being held
        self._slots, self._holding = slots, 0

    async def dispatch(self, batch_id: UUID) -> None:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(
                "select bool_or(tenant_id = %s) from intent.commands where batch_id = %s",
                (self._held, batch_id),
            )).fetchone()
        if row is not None and row[0]:
            self._holding += 1
            if self._holding >= self._slots:
                self.slots_full.set()
            await self.release.wait()
        await self._processor.process(batch_id)


@asynccontextmanager
async def flooded_pump(
    pool: AsyncConnectionPool[Conn], database_url: str, *, light_lane: bool
) -> AsyncIterator[tuple[HeldDispatcher, list[UUID]]]:
    """Tenant A's commands hold both of a pump's slots (until `release`); yields the
    dispatcher and A's command ids once they do. The pump is stopped on the way out."""
    await drain(pool)
    flood = [await enqueue(pool, new_stream(TENANT_A), "register_item", sku="F", name="F")
             for _ in range(6)]
    dispatcher = HeldDispatcher(pool, TENANT_A, slots=2)
    stop = asyncio.Event()
    pump = Pump(pool, database_url, dispatcher,
                PumpSettings(batch_limit=2, concurrency=2, poll_interval=0.1,
                             light_lane=light_lane))
    task = asyncio.create_task(pump.run(stop))
    try:
        await asyncio.wait_for(dispatcher.slots_full.wait(), timeout=10)
        yield dispatcher, flood
    finally:
        dispatcher.release.set()
        stop.set()
        await asyncio.wait_for(task, timeout=30)


async def test_the_light_lane_serves_a_quiet_tenant_while_a_flood_holds_every_slot(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    async with flooded_pump(pool, database_url, light_lane=True) as (dispatcher, flood):
        lone = await enqueue(pool, new_stream(TENANT_B), "register_item", sku="L", name="L")
        assert (await wait_terminal(pool, [lone], seconds=10))[lone] == "processed"
        assert set((await statuses(pool, flood)).values()) == {"dispatched", "pending"}
        dispatcher.release.set()
        assert set((await wait_terminal(pool, flood, seconds=10)).values()) == {"processed"}


async def test_without_the_light_lane_a_quiet_tenant_waits_for_a_slot(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    """The same flood with the light lane off: the lone command is still pending while the
    slots are held (what the lane is for)."""
    async with flooded_pump(pool, database_url, light_lane=False) as (dispatcher, flood):
        lone = await enqueue(pool, new_stream(TENANT_B), "register_item", sku="L", name="L")
        await asyncio.sleep(0.5)
        assert (await statuses(pool, [lone]))[lone] == "pending"
        dispatcher.release.set()
        await wait_terminal(pool, [*flood, lone], seconds=10)
