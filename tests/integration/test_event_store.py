"""The event store against a real PostgreSQL: appends, conflicts, loads, bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.errors import BadInput, ConcurrencyError, InvalidEvent, UnknownEventType
from pump.store.appends import InvalidAppend
from pump.store.connections import Conn
from pump.store.events import DuplicateEvent, PostgresEventStore
from tests.support.streams import history, new_stream, received, registered
from tests.support.tenants import TENANT_B

pytestmark = pytest.mark.integration


async def stored_versions(pool: AsyncConnectionPool[Conn], stream_id: object) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select version from intent.events where aggregate_id = %s order by position",
            (stream_id,),
        )
        return [row[0] for row in await cur.fetchall()]


async def test_appended_events_load_back_unchanged(store: PostgresEventStore) -> None:
    stream = new_stream()
    events = history(stream, 3)
    result = await store.append(stream, 0, events)
    assert (result.first_version, result.last_version) == (1, 3)
    assert len(result.positions) == 3
    assert list(result.positions) == sorted(result.positions)
    loaded = await store.load(stream)
    assert [e.event_id for e in loaded] == [e.event_id for e in events]
    assert [e.payload for e in loaded] == [e.payload for e in events]
    assert [e.metadata for e in loaded] == [e.metadata for e in events]
    assert all(e.transaction_id == result.transaction_id for e in loaded)
    assert [e.position for e in loaded] == list(result.positions)


async def test_stale_expected_version_is_a_conflict_naming_both_versions(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await store.append(stream, 0, history(stream, 2))
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(stream, 1, [received(stream, 2)])
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert "expected version 1" in str(caught.value)
    assert "at 2" in str(caught.value)
    assert await stored_versions(pool, stream.aggregate_id) == [1, 2]


async def test_expected_version_ahead_of_the_stream_writes_nothing(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await store.append(stream, 0, [registered(stream)])
    with pytest.raises(ConcurrencyError) as caught:
        await store.append(stream, 5, [received(stream, 6)])
    assert (caught.value.expected, caught.value.actual) == (5, 1)
    assert await stored_versions(pool, stream.aggregate_id) == [1]


async def test_racing_writers_exactly_one_wins_each_version(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await store.append(stream, 0, [registered(stream)])
    writers = 8
    for version in range(2, 22):
        attempts = [
            store.append(stream, version - 1, [received(stream, version, quantity=w + 1)])
            for w in range(writers)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, ConcurrencyError) for o in losers), losers
        assert all(o.expected == version - 1 for o in losers if isinstance(o, ConcurrencyError))
    assert await stored_versions(pool, stream.aggregate_id) == list(range(1, 22))


async def test_a_batch_is_all_or_nothing(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await store.append(stream, 0, [registered(stream)])
    await store.append(stream, 1, [received(stream, 2)])
    # A racer took version 2 already: the batch 2..4 must leave nothing behind.
    with pytest.raises(ConcurrencyError):
        await store.append(stream, 1, [received(stream, v) for v in (2, 3, 4)])
    assert await stored_versions(pool, stream.aggregate_id) == [1, 2]


async def test_the_same_events_twice_are_refused_as_duplicates(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    first = registered(stream)
    await store.append(stream, 0, [first])
    other = new_stream()
    again = first.model_copy(update={"stream": other})
    with pytest.raises(DuplicateEvent):
        await store.append(other, 0, [again])
    assert await stored_versions(pool, other.aggregate_id) == []


async def test_events_of_another_stream_or_out_of_sequence_are_refused(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream, other = new_stream(), new_stream()
    with pytest.raises(InvalidAppend, match="belongs to"):
        await store.append(stream, 0, [registered(other)])
    with pytest.raises(InvalidAppend, match="would be 1"):
        await store.append(stream, 0, [received(stream, 2)])
    with pytest.raises(InvalidAppend, match="negative"):
        await store.append(stream, -1, [registered(stream)])
    assert await stored_versions(pool, stream.aggregate_id) == []


async def test_payload_failing_its_model_is_refused_before_writing(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    good = registered(stream)
    bad = received(stream, 2, payload={"item_id": str(stream.aggregate_id), "quantity": "many"})
    with pytest.raises(InvalidEvent, match="quantity"):
        await store.append(stream, 0, [good, bad])
    unknown = received(stream, 1, event_type="inventory.mystery_happened")
    with pytest.raises(UnknownEventType, match=r"inventory\.mystery_happened"):
        await store.append(stream, 0, [unknown])
    stale = received(stream, 1, schema_version=1, payload={"item_id": "x", "qty": 1})
    with pytest.raises(InvalidAppend, match="current version 2"):
        await store.append(stream, 0, [stale])
    assert await stored_versions(pool, stream.aggregate_id) == []


async def test_the_database_refuses_what_bypasses_the_adapter(
    pool: AsyncConnectionPool[Conn],
) -> None:
    stream = new_stream()
    insert = (
        "insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,"
        " event_type, payload) values (%s, %s, 'inventory.item', %s, %s, 'inventory.x', %s)"
    )
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            await conn.execute(insert, ("not-a-uuid", stream.tenant_id, stream.aggregate_id, 1,
                                        "{}"))
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(insert, (stream.aggregate_id, stream.tenant_id,
                                        stream.aggregate_id, 1, "[1, 2]"))
        with pytest.raises(psycopg.errors.CheckViolation):
            await conn.execute(insert, (stream.aggregate_id, stream.tenant_id,
                                        stream.aggregate_id, 0, "{}"))


async def test_streams_of_different_tenants_are_separate(store: PostgresEventStore) -> None:
    stream = new_stream()
    twin = stream.model_copy(update={"tenant_id": TENANT_B})
    await store.append(stream, 0, history(stream, 2))
    await store.append(twin, 0, [registered(twin)])
    assert await store.version(stream) == 2
    assert await store.version(twin) == 1
    assert {e.stream.tenant_id for e in await store.load(twin)} == {TENANT_B}


async def test_load_from_and_as_of_a_version(store: PostgresEventStore) -> None:
    stream = new_stream()
    await store.append(stream, 0, history(stream, 6))
    assert [e.version for e in await store.load(stream, after_version=4)] == [5, 6]
    assert [e.version for e in await store.load(stream, to_version=3)] == [1, 2, 3]
    assert [e.version for e in await store.load(stream, after_version=2, to_version=4)] == [3, 4]


async def test_load_as_of_a_time(store: PostgresEventStore) -> None:
    stream = new_stream()
    await store.append(stream, 0, history(stream, 2))
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await store.append(stream, 2, [received(stream, 3)])
    assert [e.version for e in await store.load(stream, as_of=between)] == [1, 2]
    assert await store.version_at(stream, between) == 2
    assert await store.version_at(stream, between - timedelta(days=1)) == 0
    with pytest.raises(BadInput, match="time zone"):
        await store.load(stream, as_of=datetime(2020, 1, 1))


async def test_appends_inside_a_callers_transaction_roll_back_with_it(
    store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()

    async with pool.connection() as conn:
        await conn.execute("begin")
        await store.append(stream, 0, [registered(stream)], conn=conn)
        assert await store.version(stream, conn=conn) == 1  # seen inside the transaction
        await conn.execute("rollback")
    assert await stored_versions(pool, stream.aggregate_id) == []
