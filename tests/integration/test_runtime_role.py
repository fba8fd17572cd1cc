"""The runtime's least-privilege role, `intent_worker`: the whole pipeline runs as it (the
batch processor with its inline projections, the projection runner, a saga's command), and
it cannot do what the runtime never needs to."""

from __future__ import annotations

from uuid import uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from projections.roles import RUNTIME_ROLE
from projections.shop import catalog, registry
from pump.observability.gauges import read_held_back
from pump.projections.runner import ProjectionRunner
from pump.store.commands import PostgresCommandStore
from pump.store.connections import Conn
from tests.support.db import runtime_url
from tests.support.pipeline import enqueue, shop_processor, statuses
from tests.support.streams import new_stream

pytestmark = pytest.mark.integration


async def test_the_pipeline_runs_end_to_end_as_the_runtime_role(
    runtime_pool: AsyncConnectionPool[Conn],
) -> None:
    async with runtime_pool.connection() as conn:
        row = await (await conn.execute("select current_user")).fetchone()
    assert row == (RUNTIME_ROLE,)
    stream, order = new_stream(), uuid4()
    # Inserted as the runtime's own writers (sagas) insert commands.
    ids = [await enqueue(runtime_pool, stream, "register_item", sku="RT", name="Runtime"),
           await enqueue(runtime_pool, stream, "receive_stock", quantity=5),
           await enqueue(runtime_pool, stream, "reserve_stock", order_id=order, quantity=2)]
    processor = shop_processor(runtime_pool)
    store = PostgresCommandStore(runtime_pool)
    while (batch := await store.claim(50)) is not None:
        await processor.process(batch.batch_id)
    assert set((await statuses(runtime_pool, ids)).values()) == {"processed"}
    async with runtime_pool.connection() as conn:
        stock = await (await conn.execute(
            "select available, reserved from public.stock_levels where item_id = %s",
            (stream.aggregate_id,),
        )).fetchone()
    assert stock == (3, 2)
    runner = ProjectionRunner(runtime_pool, catalog, registry=registry)
    for projection in runner.projections:
        await runner.catch_up(projection)


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("update intent.events set payload = '{}'", "events are never changed"),
        ("delete from intent.events", "events are never deleted"),
        ("truncate intent.commands", "no TRUNCATE"),
        ("truncate public.stock_levels", "no TRUNCATE of a read model"),
        ("select count(*) from auth.users", "nothing in auth"),
        ("select count(*) from intent.command_types", "not the allow list"),
        ("delete from intent.command_types", "not the allow list"),
        ("select count(*) from realtime.messages", "not Realtime's messages"),
        ("create table public.intruder (id int)", "no DDL in public"),
        ("create table intent.intruder (id int)", "no DDL in intent"),
        ("drop table public.stock_levels", "no dropping a read model"),
        ("alter table intent.commands disable row level security", "no ALTER"),
        ("insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,"
         " version, event_type, payload, transaction_id) values (gen_random_uuid(),"
         " gen_random_uuid(), 'x.y', gen_random_uuid(), 1, 'x.y', '{}', '1'::xid8)",
         "the feed's transaction id is the database's"),
        ("create role intruder", "no roles"),
    ],
)
async def test_the_runtime_role_cannot(database_url: str, statement: str, why: str) -> None:
    async with await psycopg.AsyncConnection.connect(runtime_url(database_url)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute(statement)


async def test_the_runtime_role_sees_the_transaction_that_holds_the_feed_back(
    runtime_pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    """The held-back gauge, run as the runtime, describes another role's open transaction:
    its id is visible to anyone, its state, start and query only with pg_read_all_stats."""
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute("select pg_current_xact_id()")  # an open transaction, with an id
        pid = holder.info.backend_pid
        async with runtime_pool.connection() as conn:
            held = await read_held_back(conn)
        await holder.rollback()
    assert held is not None
    assert held.pid == pid
    assert held.state == "idle in transaction"
    assert held.query is not None
    assert "pg_current_xact_id" in held.query
