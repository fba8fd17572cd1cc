"""Inline projections in the worker's transaction: when a command shows processed, its read
model row is already there, and only the caller's tenant can read it. The row says what the
aggregate says, however it is folded."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from domain.contracts import StreamId
from domain.inventory import Item
from projections.inventory import STOCK_LEVELS
from projections.shop import registry
from pump.batches.processor import BatchProcessor
from pump.projections.rebuild import FoldPath, Rebuilder
from pump.store.aggregates import AggregateRepository
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.feed import head
from tests.support.pipeline import enqueue, shop_processor, statuses
from tests.support.projections import Made, fresh
from tests.support.streams import new_stream
from tests.support.tenants import TENANT_B

pytestmark = pytest.mark.integration


async def process_pending(pool: AsyncConnectionPool[Conn], batch: BatchProcessor) -> None:
    store = PostgresCommandStore(pool)
    while (claimed := await store.claim(100)) is not None:
        await batch.process(claimed.batch_id)


async def stock_row(
    pool: AsyncConnectionPool[Conn], stream: StreamId, *, as_tenant: UUID | None = None
) -> tuple[Any, ...] | None:
    """The item's stock_levels row, read by the worker role or, with `as_tenant`, by an
    authenticated user of that tenant under RLS."""
    query = ("select sku, available, reserved, event_position from public.stock_levels"
             " where item_id = %s")
    async with pool.connection() as conn, conn.transaction():
        if as_tenant is not None:
            claims = {"sub": str(uuid4()), "role": "authenticated",
                      "app_metadata": {"tenant_id": str(as_tenant)}}
            await conn.execute(
                "select set_config('role', 'authenticated', true),"
                " set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
            )
        row = await (await conn.execute(query, (stream.aggregate_id,))).fetchone()
    return tuple(row) if row is not None else None


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "per-stream"])
async def test_a_processed_command_has_its_inline_read_model_row(
    pool: AsyncConnectionPool[Conn], bulk: bool
) -> None:
    stream = new_stream()
    ids = [await enqueue(pool, stream, "register_item", sku="INL-1", name="Widget")]
    ids += [await enqueue(pool, stream, "receive_stock", quantity=q) for q in (4, 6)]
    ids.append(await enqueue(pool, stream, "reserve_stock", order_id=uuid4(), quantity=3))
    await process_pending(pool, shop_processor(pool, bulk=bulk))
    assert set((await statuses(pool, ids)).values()) == {"processed"}
    row = await stock_row(pool, stream)
    assert row is not None
    sku, available, reserved, position = row
    assert (sku, available, reserved) == ("INL-1", 7, 3)
    async with pool.connection() as conn:
        last = await (await conn.execute(
            "select max(position) from intent.events where aggregate_id = %s",
            (stream.aggregate_id,),
        )).fetchone()
    assert last is not None
    assert position == last[0]


async def test_stock_levels_names_what_the_item_names(
    pool: AsyncConnectionPool[Conn], repo: AggregateRepository, made: Made
) -> None:
    """Register, receive 10, reserve 3: the item has 10 on hand of which 7 are available,
    and its stock_levels row says available 7, reserved 3, whether written inline (the rules
    folded in Python) or rebuilt from the feed with the rules folded in SQL or in Python."""
    start = await head(pool)
    stream = new_stream()
    ids = [await enqueue(pool, stream, "register_item", sku="INL-4", name="Lamp"),
           await enqueue(pool, stream, "receive_stock", quantity=10),
           await enqueue(pool, stream, "reserve_stock", order_id=uuid4(), quantity=3)]
    await process_pending(pool, shop_processor(pool))
    assert set((await statuses(pool, ids)).values()) == {"processed"}
    item = (await repo.load(Item, stream)).state
    assert (item.on_hand, item.available, sum(item.reservations.values())) == (10, 7, 3)
    row = await stock_row(pool, stream)
    assert row is not None
    assert row[1:3] == (item.available, 3)
    folds: tuple[FoldPath, ...] = ("sql", "python")
    for fold in folds:
        projection = fresh(STOCK_LEVELS)
        made.schemas.append(projection.schema_name)
        rebuilder = Rebuilder(pool, projection, fold=fold, registry=registry)
        await rebuilder.run(start)
        assert rebuilder.fold_path == fold
        query = sql.SQL("select available, reserved from {} where item_id = %s").format(
            sql.Identifier(projection.schema_name, "stock_levels"))
        async with pool.connection() as conn:
            rebuilt = await (await conn.execute(query, (stream.aggregate_id,))).fetchall()
        assert rebuilt == [(7, 3)], fold


async def test_a_read_model_row_is_visible_to_its_tenant_only(
    pool: AsyncConnectionPool[Conn],
) -> None:
    stream = new_stream()
    await enqueue(pool, stream, "register_item", sku="INL-2", name="Gadget")
    await process_pending(pool, shop_processor(pool))
    mine = await stock_row(pool, stream, as_tenant=stream.tenant_id)
    assert mine is not None
    assert mine[0] == "INL-2"
    assert await stock_row(pool, stream, as_tenant=TENANT_B) is None


async def test_a_rejected_command_changes_no_read_model_row(
    pool: AsyncConnectionPool[Conn],
) -> None:
    stream = new_stream()
    await enqueue(pool, stream, "register_item", sku="INL-3", name="Thing")
    await process_pending(pool, shop_processor(pool))
    before = await stock_row(pool, stream)
    too_many = await enqueue(pool, stream, "reserve_stock", order_id=uuid4(), quantity=99)
    await process_pending(pool, shop_processor(pool))
    assert (await statuses(pool, [too_many]))[too_many] == "rejected"
    assert await stock_row(pool, stream) == before
