"""Claims take tenants in turns: a tenant's backlog never makes another tenant's lone
command wait behind it, and each aggregate's commands are still claimed in order."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.app import registry
from pump.batch_processor import BatchProcessor
from pump.command_store import PostgresCommandStore
from pump.database import Conn
from tests.integration.pipeline import enqueue
from tests.integration.streams import TENANT_A, TENANT_B, new_stream

pytestmark = pytest.mark.integration

TENANT_C = UUID("00000000-0000-4000-8000-00000000000c")


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
