"""Bulk loading and appending, as the batch processor uses them: several streams in two
queries, every stream's events in one all-or-nothing statement."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import StreamId
from domain.decider import evolve_all
from domain.errors import ConcurrencyError
from domain.inventory import Item
from projections.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.appends import InvalidAppend
from pump.store.connections import Conn
from pump.store.events import DuplicateEvent, PostgresEventStore
from tests.support.streams import history, new_stream, received
from tests.support.tenants import TENANT_B

pytestmark = pytest.mark.integration


async def count_events(pool: AsyncConnectionPool[Conn], *streams: StreamId) -> int:
    ids = [s.aggregate_id for s in streams]
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select count(*) from intent.events where aggregate_id = any(%s)", (ids,)
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_load_many_matches_one_at_a_time_loads_with_and_without_snapshots(
    repo: AggregateRepository, store: PostgresEventStore
) -> None:
    empty = new_stream()
    short = new_stream(TENANT_B)
    long = new_stream()
    await store.append(short, 0, history(short, 3))
    events = history(long, 123)
    before = await repo.load(Item, long)
    for chunk in range(0, 123, 50):  # saved in steps, so snapshots at 50 and 100
        part = events[chunk : chunk + 50]
        before, _ = await repo.save(Item, before, part)
    many = await repo.load_many([(Item, empty), (Item, short), (Item, long)])
    for stream in (empty, short, long):
        one = await repo.load(Item, stream)
        assert many[stream] == one
    assert many[empty].version == 0
    assert many[short].version == 3
    assert many[long].version == 123


async def test_load_many_passes_over_an_unreadable_snapshot(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    before = await repo.load(Item, stream)
    after, _ = await repo.save(Item, before, history(stream, 50))
    async with pool.connection() as conn:
        await conn.execute(
            "update intent.snapshots set state = '{\"nonsense\": 1}'::jsonb"
            " where aggregate_id = %s",
            (stream.aggregate_id,),
        )
    many = await repo.load_many([(Item, stream)])
    assert many[stream] == after
    assert many[stream] == await repo.load(Item, stream, use_snapshots=False)


async def test_append_many_writes_every_stream_in_order(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    first, second, untouched = new_stream(), new_stream(TENANT_B), new_stream()
    await store.append(second, 0, history(second, 2))
    results = await store.append_many(
        [
            (first, 0, history(first, 3)),
            (untouched, 0, []),
            (second, 2, [received(second, 3), received(second, 4)]),
        ]
    )
    assert [(r.first_version, r.last_version) for r in results] == [(1, 3), (1, 0), (3, 4)]
    positions = [p for r in results for p in r.positions]
    assert positions == sorted(positions)
    assert results[0].transaction_id == results[2].transaction_id
    assert await store.version(first) == 3
    assert await store.version(second) == 4
    assert [e.version for e in await store.load(second)] == [1, 2, 3, 4]


async def test_append_many_writes_nothing_when_one_stream_is_behind_or_ahead(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    fine, moved = new_stream(), new_stream()
    await store.append(moved, 0, history(moved, 3))
    # expected 1, head at 3: the unique stream-version constraint refuses it
    with pytest.raises(ConcurrencyError) as ahead:
        await store.append_many(
            [(fine, 0, history(fine, 1)), (moved, 1, [received(moved, 2)])]
        )
    assert ahead.value.expected == 1
    assert ahead.value.actual == 3
    # expected 5, head at 3: the head check refuses it
    with pytest.raises(ConcurrencyError) as behind:
        await store.append_many(
            [(fine, 0, history(fine, 1)), (moved, 5, [received(moved, 6)])]
        )
    assert behind.value.expected == 5
    assert behind.value.actual == 3
    assert await count_events(pool, fine) == 0
    assert await count_events(pool, moved) == 3


async def test_append_many_refuses_bad_input_before_writing(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    one, two = new_stream(), new_stream()
    with pytest.raises(InvalidAppend):
        await store.append_many([(one, 0, history(one, 1)), (one, 1, [received(one, 2)])])
    with pytest.raises(InvalidAppend):
        await store.append_many([(one, 0, [received(two, 1)])])
    (stored,) = history(one, 1)
    await store.append(one, 0, [stored])
    again = stored.model_copy(update={"stream": two})  # the same event id, another stream
    with pytest.raises(DuplicateEvent):
        await store.append_many([(two, 0, [again])])
    assert await count_events(pool, two) == 0


async def test_record_many_saves_due_snapshots(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    a, b = new_stream(), new_stream()
    loaded = await repo.load_many([(Item, a), (Item, b)])
    changes = []
    for stream, length in ((a, 60), (b, 10)):
        before = loaded[stream]
        new = history(stream, length)
        changes.append((Item, before, evolve_all(registry, Item, before, new), new))
    async with pool.connection() as conn, conn.transaction():
        results = await repo.record_many(changes, conn=conn)
    assert [r.last_version for r in results] == [60, 10]
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select aggregate_id, version from intent.snapshots where aggregate_id = any(%s)",
            ([a.aggregate_id, b.aggregate_id],),
        )
        assert await cur.fetchall() == [(a.aggregate_id, 60)]  # the state after, as `record`
