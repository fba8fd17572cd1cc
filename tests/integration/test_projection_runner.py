"""The async projection runner against the real database: exactly once, in feed order, never
past an open transaction, a failure stops only its projection, and the applier's SQL does
what its fold promises.

Projections here are copies of the app's with a fresh name and schema (created with
projections.sql.projection_ddl and dropped afterwards), and start at the head of the shared
feed, so that only the events a test writes reach them.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from domain.contracts import Event, Metadata, StreamId
from domain.feed import FeedPosition
from projections.apply import Applier
from projections.ddl import projection_ddl, table_ddl
from projections.inventory import STOCK_LEVELS
from projections.metadata import Column, Delete, Op, SqlFunction, Table, Upsert
from projections.orders import ORDER_SUMMARIES
from projections.shop import registry
from pump.projections.pages import CHUNK, read_feed
from pump.projections.rebuild import Rebuilder
from pump.projections.runner import ProjectionRunner
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from pump.store.feed import GlobalFeed
from tests.support.feed import checkpoint_of, head, start_at_head
from tests.support.processes import intent_process
from tests.support.projections import THINGS, Made, fresh, runner_for, table_rows
from tests.support.streams import append, new_stream, received, registered
from tests.support.waiting import until

pytestmark = pytest.mark.integration

# -- the runner, in process ---------------------------------------------------------------


async def test_each_page_moves_the_checkpoint_with_its_effects(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    tenant = uuid4()
    stream = new_stream(tenant)
    events = await append(store, [registered(stream), *(received(stream, v, v) for v in (2, 3))])
    runner = runner_for(pool, projection, page_size=2)
    first = await runner.step(projection)
    assert first.status == "applied"
    assert first.position == FeedPosition.of(events[1])
    assert (await checkpoint_of(pool, projection.consumer)).position == first.position
    await runner.catch_up(projection)
    (row,) = await table_rows(pool, projection, tenant=tenant)
    assert row[1:6] == (stream.aggregate_id, "SKU-1", "Widget", 5, 0)
    assert row[-2:] == (events[-1].transaction_id, events[-1].position)
    assert (await runner.step(projection)).status == "idle"


async def test_the_runner_reads_what_the_global_feed_reads(
    pool: AsyncConnectionPool[Conn], feed: GlobalFeed, store: PostgresEventStore
) -> None:
    start = await head(pool)
    for _ in range(2):  # more events than one JSON chunk holds
        stream = new_stream(uuid4())
        await append(store, [registered(stream), *(received(stream, v) for v in range(2, 301))])
    async with pool.connection() as conn:
        mine = await read_feed(conn, start, limit=700)
    theirs = await feed.read(start, limit=700)
    assert len(mine.events) == 600 > CHUNK
    assert mine == theirs


async def test_a_late_commit_is_not_skipped(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    runner = runner_for(pool, projection)
    tenant = uuid4()
    slow, fast = new_stream(tenant), new_stream(tenant)
    async with pool.connection() as held:
        await held.execute("begin")
        slow_events = await append(store, [registered(slow)], conn=held)
        fast_events = await append(store, [registered(fast)])
        before = await checkpoint_of(pool, projection.consumer)
        assert (await runner.step(projection)).status == "idle"
        assert (await checkpoint_of(pool, projection.consumer)).position == before.position
        assert await table_rows(pool, projection, tenant=tenant) == []
        await held.execute("commit")
    await runner.catch_up(projection)
    rows = await table_rows(pool, projection, tenant=tenant)
    assert {r[1] for r in rows} == {slow.aggregate_id, fast.aggregate_id}
    end = (await checkpoint_of(pool, projection.consumer)).position
    assert end == max(FeedPosition.of(slow_events[0]), FeedPosition.of(fast_events[0]))


async def test_two_runners_apply_each_event_exactly_once(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    tenant = uuid4()
    streams = [new_stream(tenant) for _ in range(4)]
    count = 0
    for stream in streams:
        await append(store, [registered(stream)])
        for version in range(2, 12):
            await append(store, [received(stream, version, version)], expected=version - 1)
        count += 11
    end = await head(pool)
    runners = [runner_for(pool, projection, page_size=3) for _ in range(3)]

    async def drive(runner: ProjectionRunner) -> None:
        while (await checkpoint_of(pool, projection.consumer)).position < end:
            await runner.step(projection)
            await asyncio.sleep(0)

    await asyncio.gather(*(drive(r) for r in runners))
    assert sum(r.applied[projection.name] for r in runners) == count
    rows = await table_rows(pool, projection, tenant=tenant)
    assert [r[4] for r in rows] == [sum(range(2, 12))] * 4


async def test_an_older_event_never_overwrites_a_newer_one(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    tenant = uuid4()
    stream = new_stream(tenant)
    events = await append(store, [registered(stream), received(stream, 2, 5),
                                  received(stream, 3, 7)])
    applier = Applier(projection, registry=registry)
    async with pool.connection() as conn:
        await applier.apply(conn, [events[0], events[2]])
        before = await table_rows(pool, projection, tenant=tenant)
        older = await applier.apply(conn, [events[1]])
        again = await applier.apply(conn, [events[2]])
    assert (older.written, older.skipped) == (0, 1)
    assert (again.written, again.skipped) == (0, 1)
    after = await table_rows(pool, projection, tenant=tenant)
    assert after == before
    assert after[0][4] == 7


async def test_a_delete_older_than_the_row_leaves_it(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    tenant = uuid4()
    stream = new_stream(tenant)
    deleting: set[UUID] = set()

    def handler(event: Event, payload: BaseModel) -> Sequence[Op]:
        key = {"item_id": event.stream.aggregate_id}
        if event.event_id in deleting:
            return [Delete(table="stock_levels", key=key)]
        return [Upsert(table="stock_levels", key=key, add={"available": 1})]

    projection = await made.create(fresh(STOCK_LEVELS, mode="async", handler=handler))
    events = await append(store, [registered(stream), received(stream, 2)])
    deleting.add(events[0].event_id)
    applier = Applier(projection, registry=registry)
    async with pool.connection() as conn:
        await applier.apply(conn, [events[1]])
        result = await applier.apply(conn, [events[0]])
    assert (result.written, result.skipped) == (0, 1)
    assert len(await table_rows(pool, projection, tenant=tenant)) == 1


async def test_a_client_sees_only_its_tenants_rows(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    tenant_a, tenant_b = uuid4(), uuid4()
    a, b = new_stream(tenant_a), new_stream(tenant_b)
    await append(store, [registered(a)])
    await append(store, [registered(b)])
    await runner_for(pool, projection).catch_up(projection)
    query = sql.SQL("select tenant_id, item_id from {}").format(
        sql.Identifier(projection.schema_name, "stock_levels")
    )
    claims = {"sub": str(uuid4()), "role": "authenticated",
              "app_metadata": {"tenant_id": str(tenant_a)}}
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "select set_config('role', 'authenticated', true),"
            " set_config('request.jwt.claims', %s, true)",
            (json.dumps(claims),),
        )
        seen = await (await conn.execute(query)).fetchall()
    assert seen == [(tenant_a, a.aggregate_id)]
    everything = await table_rows(pool, projection)
    assert {r[0] for r in everything} == {tenant_a, tenant_b}


async def test_tables_holding_rows_without_a_checkpoint_ask_for_a_rebuild(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    projection = await made.create(fresh(STOCK_LEVELS, mode="async"))
    stream = new_stream(uuid4())
    events = await append(store, [registered(stream)])
    async with pool.connection() as conn:
        await Applier(projection, registry=registry).apply(conn, events)
        await conn.execute("delete from intent.checkpoints where consumer = %s",
                           (projection.consumer,))
    result = await runner_for(pool, projection).step(projection)
    assert result.status == "failed"
    assert result.error is not None
    assert result.error["kind"] == "needs_rebuild"
    assert f"intent projections rebuild {projection.name}" in result.error["message"]


# -- failures -------------------------------------------------------------------------------


async def test_a_failing_handler_stops_only_its_projection_at_that_event_until_fixed(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    from projections.inventory import stock_levels_rules

    broken = {"on": True}

    def fragile(event: Event, payload: BaseModel) -> Sequence[Op]:
        if broken["on"] and getattr(payload, "quantity", None) == 13:
            raise ValueError("thirteen is unlucky")
        return stock_levels_rules(event, payload)

    good = await made.create(fresh(STOCK_LEVELS, mode="async"))
    bad = await made.create(fresh(STOCK_LEVELS, mode="async", handler=fragile))
    tenant = uuid4()
    stream = new_stream(tenant)
    events = await append(store, [registered(stream), received(stream, 2, 5),
                                  received(stream, 3, 13), received(stream, 4, 7)])
    runner = runner_for(pool, good, bad, page_size=10, poll_interval=0.02,
                        backoff_first=0.05, backoff_max=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        async def stopped() -> bool:
            return (await checkpoint_of(pool, bad.consumer)).error is not None

        await until(stopped, what="the error to be recorded")
        checkpoint = await checkpoint_of(pool, bad.consumer)
        assert checkpoint.position == FeedPosition.of(events[1])
        error = checkpoint.error
        assert error is not None
        assert error["event_id"] == str(events[2].event_id)
        assert error["event_type"] == "inventory.stock_received"
        assert (error["transaction_id"], error["position"]) == (
            events[2].transaction_id, events[2].position)
        assert "thirteen is unlucky" in error["message"]
        assert error["kind"] == "handler_failed"
        assert (await table_rows(pool, bad, tenant=tenant))[0][4] == 5

        async def good_done() -> bool:
            rows = await table_rows(pool, good, tenant=tenant)
            return bool(rows) and rows[0][4] == 25

        await until(good_done, what="the healthy projection to go on")
        broken["on"] = False

        async def resumed() -> bool:
            checkpoint = await checkpoint_of(pool, bad.consumer)
            return checkpoint.error is None and checkpoint.position == FeedPosition.of(
                events[3])

        await until(resumed, what="the fixed projection to resume")
        assert (await table_rows(pool, bad, tenant=tenant))[0][4] == 25
    finally:
        stop.set()
        await running


async def test_a_write_the_database_refuses_is_pinned_to_its_event(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    def labels(event: Event, payload: BaseModel) -> Sequence[Op]:
        label = None if getattr(payload, "quantity", 0) == 3 else "ok"
        return [Upsert(table="things", key={"id": event.stream.aggregate_id},
                       set={"label": label} if label else {})]

    table = THINGS
    projection = await made.create(fresh(
        STOCK_LEVELS, mode="async", tables=(table,), handler=labels,
        reads=("inventory.stock_received",),
    ))
    tenant = uuid4()
    streams = [new_stream(tenant) for _ in range(3)]
    events = []
    for stream, quantity in zip(streams, (1, 3, 2), strict=True):
        events += await append(store, [received(stream, 1, quantity)])
    runner = runner_for(pool, projection, page_size=10, poll_interval=0.02,
                        backoff_first=0.05, backoff_max=0.2)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        async def recorded() -> bool:
            return (await checkpoint_of(pool, projection.consumer)).error is not None

        await until(recorded, what="the error to be recorded")
    finally:
        stop.set()
        await running
    checkpoint = await checkpoint_of(pool, projection.consumer)
    assert checkpoint.position == FeedPosition.of(events[0])
    error = checkpoint.error
    assert error is not None
    assert error["event_id"] == str(events[1].event_id)
    assert error["kind"] == "write_failed"
    assert "label" in error["message"]
    assert len(await table_rows(pool, projection, table="things")) == 1


# -- the applier's SQL does what its fold promises -----------------------------------------

KINDS = Table(
    name="kinds",
    columns=(
        Column(name="tenant_id", type="uuid", nullable=False),
        Column(name="code", type="integer", nullable=False),
        Column(name="label", type="text"),
        Column(name="count", type="bigint", nullable=False, default=3),
        Column(name="total", type="numeric", default=0),
        Column(name="ratio", type="double precision", nullable=False, default=1.5),
        Column(name="flag", type="boolean", default=False),
        Column(name="day", type="date"),
        Column(name="doc", type="jsonb"),
        Column(name="at", type="timestamptz", default=SqlFunction.NOW),
    ),
    primary_key=("tenant_id", "code"),
)


def script() -> list[list[Op]]:
    """A page touching the same rows again and again, with every kind of change."""

    def up(code: int, **fields: Any) -> Upsert:
        return Upsert(table="kinds", key={"code": code}, **fields)

    def gone(code: int) -> Delete:
        return Delete(table="kinds", key={"code": code})

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return [
        [up(1, add={"count": 2, "ratio": 0.1})],
        [up(1, set={"label": "a", "day": date(2026, 1, 1)}, add={"total": 1})],
        [up(1, add={"ratio": 0.2, "count": 1}), up(2, set={"doc": {"k": [1, 2]}})],
        [up(2, add={"count": 5}), up(3, set={"flag": True, "at": when})],
        [gone(2), up(4, set={"total": Decimal("0.1")})],
        [up(2, set={"label": "again"}), up(4, add={"total": 2})],
        [up(1, set={"ratio": 3.0}), up(1, add={"ratio": 0.3})],
        [gone(3)],
        [up(5, set={"count": 7}), gone(5), up(5, add={"total": 4})],
        [up(1, add={"ratio": 1e16})],
    ]


async def test_one_statement_per_page_writes_what_event_by_event_writes(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made
) -> None:
    pages = script()
    tenant = uuid4()
    stream = new_stream(tenant)
    events = await append(store, [registered(stream)]
                          + [received(stream, v, 1) for v in range(2, len(pages) + 1)])
    by_id = {e.event_id: ops for e, ops in zip(events, pages, strict=True)}

    def handler(event: Event, payload: BaseModel) -> Sequence[Op]:
        return by_id.get(event.event_id, [])

    projection = await made.create(fresh(
        STOCK_LEVELS, tables=(KINDS,), handler=handler,
        reads=("inventory.item_registered", "inventory.stock_received"),
    ))
    async with pool.connection() as conn:
        for statement in table_ddl(projection, KINDS, physical_name="kinds_one_by_one"):
            await conn.execute(statement.encode())
    folded = Applier(projection, registry=registry)
    one_by_one = Applier(projection, physical={"kinds": "kinds_one_by_one"}, registry=registry)
    async with pool.connection() as conn, conn.transaction():
        result = await folded.apply(conn, events)
        for event in events:
            await one_by_one.apply(conn, [event])
    assert result.statements < len(events)
    left = await table_rows(pool, projection, table="kinds")
    right = await table_rows(pool, projection, table="kinds", physical="kinds_one_by_one")
    assert left == right
    assert [r[1] for r in left] == [1, 2, 4, 5]
    assert left[0][2:6] == ("a", 3, Decimal(1), 3.0 + 0.3 + 1e16)
    assert left[1][2:4] == ("again", 3)


# -- the runner as a process: SIGKILL mid-stream, restart, same as a rebuild ---------------


def runner_process(database_url: str) -> AbstractContextManager[subprocess.Popen[str]]:
    return intent_process(database_url, "projections", "run", "--only", "order_summaries",
                          "--page-size", "2", "--poll-interval", "0.05")


def order_event(tenant: UUID, order: UUID, version: int, event_type: str,
                payload: dict[str, Any]) -> Event:
    stream = StreamId(tenant_id=tenant, aggregate_type="orders.order", aggregate_id=order)
    return Event(
        event_id=uuid4(), event_type=event_type, schema_version=1, stream=stream,
        version=version, payload={"order_id": str(order), **payload},
        metadata=Metadata(tenant_id=tenant, correlation_id=uuid4()),
    )


async def test_a_runner_killed_mid_stream_resumes_to_what_a_rebuild_gives(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, made: Made, database_url: str
) -> None:
    live = ORDER_SUMMARIES
    async with pool.connection() as conn:
        cur = await conn.execute("select to_regclass('public.order_summaries') is not null")
        exists = (await cur.fetchone() or (False,))[0]
        if not exists:
            for statement in projection_ddl(live):
                await conn.execute(statement.encode())
    start = await head(pool)
    await start_at_head(pool, live)
    tenant = uuid4()
    orders = [uuid4() for _ in range(120)]
    for n, order in enumerate(orders):
        await append(store, [order_event(tenant, order, 1, "orders.order_placed",
                                         {"item_id": str(uuid4()), "quantity": n + 1})])
    for n, order in enumerate(orders):
        if n % 3 == 0:
            await append(store, [order_event(tenant, order, 2, "orders.order_paid", {})], 1)
        elif n % 3 == 1:
            await append(store, [order_event(tenant, order, 2, "orders.order_cancelled",
                                             {"reason": f"r{n}"})], 1)
    end = await head(pool)

    async def mine() -> int:
        return len(await table_rows(pool, live, tenant=tenant))

    with runner_process(database_url) as first:
        async def partway() -> bool:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            return await mine() >= 20

        await until(partway, seconds=60, what="the runner to get going")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert (await checkpoint_of(pool, live.consumer)).position < end, "finished too early"
    with runner_process(database_url) as second:
        async def done() -> bool:
            return (await checkpoint_of(pool, live.consumer)).position >= end

        await until(done, seconds=90, what="the restarted runner to catch up")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
        assert "projection runner stopped" in (second.stderr.read() if second.stderr else "")
    rebuilt = await made.create(fresh(live), at_head=False)
    await Rebuilder(pool, rebuilt, registry=registry).run(start)
    expected = await table_rows(pool, rebuilt, tenant=tenant)
    assert len(expected) == 120
    assert await table_rows(pool, live, tenant=tenant) == expected
    assert (await checkpoint_of(pool, live.consumer)).error is None
