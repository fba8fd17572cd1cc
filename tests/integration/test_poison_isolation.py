"""One command that cannot be processed never holds up the others claimed with it.

The poison here is the one an outsider found: two receipts of 2**62 each are fine for the
aggregate, but their sum does not fit the inline `stock_levels` row's bigint, so the batch's
transaction fails on every attempt. Isolation must process everyone else's commands at once,
hold only the commands behind the poison on its own aggregate, and record the poison failed
on the batch's last attempt."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from pump.batches.processor import PoisonedBatchError
from pump.batches.pump import DirectDispatcher, Pump, PumpSettings
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.pipeline import (
    enqueue,
    shop_processor,
    statuses,
    temporal_pipeline,
    wait_terminal,
)
from tests.support.streams import new_stream
from tests.support.tenants import TENANT_A, TENANT_B

pytestmark = pytest.mark.integration

HALF_OF_TWO_TO_THE_63 = 2**62


async def poisoned_scenario(pool: AsyncConnectionPool[Conn]) -> dict[str, UUID]:
    """Tenant A's item receives 2**62 twice (the second overflows its read model row) and
    then 1 more; tenant B's item is registered and receives 5. Returns the command ids."""
    a, b = new_stream(TENANT_A), new_stream(TENANT_B)
    ids = {
        "a_register": await enqueue(pool, a, "register_item", sku="P-A", name="Poisoned"),
        "a_first": await enqueue(pool, a, "receive_stock", quantity=HALF_OF_TWO_TO_THE_63),
        "b_register": await enqueue(pool, b, "register_item", sku="P-B", name="Bystander"),
        "a_poison": await enqueue(pool, a, "receive_stock", quantity=HALF_OF_TWO_TO_THE_63),
        "b_receive": await enqueue(pool, b, "receive_stock", quantity=5),
        "a_after": await enqueue(pool, a, "receive_stock", quantity=1),
    }
    return ids


async def available(pool: AsyncConnectionPool[Conn], command_id: UUID) -> int | None:
    """The stock_levels row of the item the command targeted."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select s.available from public.stock_levels s join intent.commands c"
            " on c.aggregate_id = s.item_id where c.command_id = %s", (command_id,),
        )).fetchone()
    return None if row is None else int(row[0])


async def failure_of(pool: AsyncConnectionPool[Conn], command_id: UUID) -> dict[str, object]:
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select error from intent.commands where command_id = %s", (command_id,)
        )).fetchone()
    assert row is not None
    error: dict[str, object] = row[0]
    return error


async def test_isolation_processes_the_others_and_holds_the_poison_until_the_last_attempt(
    pool: AsyncConnectionPool[Conn],
) -> None:
    ids = await poisoned_scenario(pool)
    batch = await PostgresCommandStore(pool).claim(100)
    assert batch is not None
    assert set(ids.values()) <= set(batch.command_ids)
    worker = shop_processor(pool)

    with pytest.raises(PoisonedBatchError, match="2 command"):
        await worker.process(batch.batch_id, attempt=1, last_attempt=False)
    first = await statuses(pool, list(ids.values()))
    assert {name: first[ids[name]] for name in ids} == {
        "a_register": "processed", "a_first": "processed",
        "b_register": "processed", "b_receive": "processed",
        "a_poison": "dispatched", "a_after": "dispatched",
    }
    assert await available(pool, ids["b_receive"]) == 5

    result = await worker.process(batch.batch_id, attempt=2, last_attempt=True)
    assert (result.processed, result.failed) == (1, 1)
    final = await statuses(pool, list(ids.values()))
    assert final[ids["a_poison"]] == "failed"
    assert final[ids["a_after"]] == "processed"
    assert await available(pool, ids["a_after"]) == HALF_OF_TWO_TO_THE_63 + 1
    error = await failure_of(pool, ids["a_poison"])
    assert "out of range" in str(error["message"])
    assert error["attempt"] == 2


async def test_a_poisoned_batch_finishes_under_the_direct_pump_and_is_not_swept_again(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    ids = await poisoned_scenario(pool)
    stop = asyncio.Event()
    pump = Pump(pool, database_url, DirectDispatcher(shop_processor(pool), first_backoff=0.05),
                PumpSettings(poll_interval=0.1, batch_limit=100))
    task = asyncio.create_task(pump.run(stop))
    try:
        bystanders = [ids["b_register"], ids["b_receive"], ids["a_register"]]
        # Processed within the bound of 10 s after the first failure.
        assert set((await wait_terminal(pool, bystanders, seconds=10)).values()) == {
            "processed"}
        final = await wait_terminal(pool, list(ids.values()), seconds=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert final[ids["a_poison"]] == "failed"
    assert [final[ids[n]] for n in ("a_first", "a_after")] == ["processed", "processed"]
    async with pool.connection() as conn:
        open_batches = await (await conn.execute(
            "select count(*) from intent.batches b join intent.commands c using (batch_id)"
            " where c.command_id = any(%s) and b.status <> 'done'", (list(ids.values()),),
        )).fetchone()
    assert open_batches == (0,)


async def test_a_poisoned_batch_finishes_through_temporal_with_the_others_processed(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    ids = await poisoned_scenario(pool)
    async with temporal_pipeline(pool, database_url, temporal_env,
                                 processor=lambda: shop_processor(pool), queue="intent-poison",
                                 batch_limit=100, poll_interval=0.1):
        bystanders = [ids["b_register"], ids["b_receive"]]
        assert set((await wait_terminal(pool, bystanders, seconds=10)).values()) == {
            "processed"}
        final = await wait_terminal(pool, list(ids.values()), seconds=20)
    assert final[ids["a_poison"]] == "failed"
    assert final[ids["a_after"]] == "processed"
    assert "out of range" in str((await failure_of(pool, ids["a_poison"]))["message"])
