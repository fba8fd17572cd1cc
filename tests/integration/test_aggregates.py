"""Loading and saving aggregates: snapshots, as-of loads, unreadable snapshots, bad input."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Command, Metadata, StreamId
from domain.decider import Loaded, decide, rehydrate
from domain.errors import ConcurrencyError, InvalidEvent, UnknownEventType
from domain.inventory import Item, ItemState
from projections.shop import registry
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from pump.store.replay import PAGE
from tests.support.streams import history, new_stream, received
from tests.support.tenants import TENANT_A

pytestmark = pytest.mark.integration


def command(stream: StreamId, kind: str, **payload: object) -> Command:
    body = {"item_id": str(stream.aggregate_id), **payload}
    return Command(
        command_id=uuid4(),
        command_type=f"inventory.{kind}",
        payload=body,
        metadata=Metadata(tenant_id=stream.tenant_id, correlation_id=uuid4()),
    )


async def run(
    repo: AggregateRepository, stream: StreamId, kind: str, **payload: object
) -> Loaded[ItemState]:
    loaded = await repo.load(Item, stream)
    events = decide(registry, command(stream, kind, **payload), loaded)
    after, _ = await repo.save(Item, loaded, events)
    return after


async def snapshot_versions(pool: AsyncConnectionPool[Conn], stream: StreamId) -> list[int]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select version from intent.snapshots where aggregate_id = %s order by version",
            (stream.aggregate_id,),
        )
        return [r[0] for r in await cur.fetchall()]


async def test_snapshots_are_written_at_each_policy_point_and_used_on_load(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    for _ in range(119):
        last = await run(repo, stream, "receive_stock", quantity=2)
    assert last.version == 120
    assert last.state.on_hand == 238
    assert await snapshot_versions(pool, stream) == [50, 100]
    with_snapshot = await repo.load(Item, stream)
    from_scratch = await repo.load(Item, stream, use_snapshots=False)
    assert with_snapshot == from_scratch == last
    as_of = await repo.load(Item, stream, version=75)
    assert as_of.version == 75
    assert as_of.state.on_hand == 148


async def test_a_wrong_snapshot_would_show_so_the_snapshot_is_really_read(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    for _ in range(49):
        await run(repo, stream, "receive_stock", quantity=1)
    async with pool.connection() as conn:
        await conn.execute(
            "update intent.snapshots set state = jsonb_set(state, '{on_hand}', '1000')"
            " where aggregate_id = %s",
            (stream.aggregate_id,),
        )
    assert (await repo.load(Item, stream)).state.on_hand == 1000
    assert (await repo.load(Item, stream, use_snapshots=False)).state.on_hand == 49


async def test_a_snapshot_of_a_newer_schema_is_passed_over(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    await run(repo, stream, "receive_stock", quantity=5)
    async with pool.connection() as conn:
        await conn.execute(
            "insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,"
            " schema_version, state) values (%s, %s, %s, 2, 99, '{\"on_hand\": -1}')",
            (stream.tenant_id, stream.aggregate_type, stream.aggregate_id),
        )
    loaded = await repo.load(Item, stream)
    assert loaded.version == 2
    assert loaded.state.on_hand == 5


async def test_a_lost_race_saves_neither_events_nor_snapshot(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    for _ in range(48):
        await run(repo, stream, "receive_stock", quantity=1)
    stale = await repo.load(Item, stream)  # version 49: the next save crosses 50
    await run(repo, stream, "receive_stock", quantity=1)
    events = decide(registry, command(stream, "receive_stock", quantity=7), stale)
    with pytest.raises(ConcurrencyError):
        await repo.save(Item, stale, events)
    assert await snapshot_versions(pool, stream) == [50]
    assert (await repo.load(Item, stream)).state.on_hand == 49


def metadata(stream: StreamId) -> str:
    return Metadata(tenant_id=stream.tenant_id, correlation_id=uuid4()).model_dump_json()


async def insert_raw(
    pool: AsyncConnectionPool[Conn], stream: StreamId, version: int, event_type: str,
    schema_version: int, payload: str,
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,"
            " version, event_type, schema_version, payload, metadata) values (%s, %s, %s, %s,"
            " %s, %s, %s, %s::jsonb, %s::jsonb)",
            (uuid4(), stream.tenant_id, stream.aggregate_type, stream.aggregate_id, version,
             event_type, schema_version, payload, metadata(stream)),
        )


async def test_old_event_versions_are_upcast_on_load(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    item = str(stream.aggregate_id)
    await insert_raw(pool, stream, 2, "inventory.stock_received", 1,
                     f'{{"item_id": "{item}", "qty": 4}}')
    assert (await repo.load(Item, stream)).state.on_hand == 4


async def test_unknown_event_types_on_load_are_a_clear_error(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    await insert_raw(pool, stream, 2, "inventory.item_teleported", 1, "{}")
    with pytest.raises(UnknownEventType, match=r"inventory\.item_teleported"):
        await repo.load(Item, stream)


async def test_stored_payloads_failing_their_model_are_a_clear_error(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    await insert_raw(pool, stream, 2, "inventory.stock_received", 2,
                     f'{{"item_id": "{stream.aggregate_id}", "quantity": "lots"}}')
    with pytest.raises(InvalidEvent, match="quantity"):
        await repo.load(Item, stream)


async def test_a_stored_envelope_that_is_malformed_names_the_event(
    repo: AggregateRepository, pool: AsyncConnectionPool[Conn]
) -> None:
    stream = new_stream()
    await run(repo, stream, "register_item", sku="S", name="Bolt")
    # Stored and read in one transaction that is rolled back: the feed is shared by the
    # session, and a broken envelope would (rightly) stop every reader at it.
    async with pool.connection() as conn:
        await conn.execute("begin")
        await conn.execute(
            "insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,"
            " version, event_type, payload, metadata) values (%s, %s, %s, %s, 2,"
            " 'inventory.stock_received', '{}', '{\"tenant_id\": \"nope\"}')",
            (uuid4(), stream.tenant_id, stream.aggregate_type, stream.aggregate_id),
        )
        # Its envelope, as the event store reads it, is refused by name ...
        with pytest.raises(InvalidEvent, match=r"position \d+.*metadata\.tenant_id"):
            await repo.events.load(stream, conn=conn)
        # ... and the aggregate's fold, which reads only payloads, names the event (by its
        # version in the stream) whose v1 payload, without `qty`, cannot be upcast.
        with pytest.raises(InvalidEvent, match=r"event version 2 of .*upcasting from v1"):
            await repo.load(Item, stream, conn=conn)
        await conn.execute("rollback")


async def test_a_stream_with_no_events_loads_as_the_initial_state(
    repo: AggregateRepository,
) -> None:
    stream = StreamId(tenant_id=TENANT_A, aggregate_type="inventory.item", aggregate_id=UUID(int=7))
    loaded = await repo.load(Item, stream)
    assert loaded.version == 0
    assert loaded.state == ItemState()


async def test_a_stream_longer_than_a_page_loads_as_its_envelopes_fold(
    repo: AggregateRepository,
) -> None:
    """Pages end and begin exactly where they should, also with v1 events (upcast one by
    one) on either side of the page boundary."""
    stream = new_stream()
    length = PAGE + 60
    events = history(stream, length)
    for version in (PAGE - 1, PAGE, PAGE + 1):  # stored at v1, which named the field `qty`
        events[version - 1] = received(stream, version, schema_version=1, payload={
            "item_id": str(stream.aggregate_id), "qty": 5})
    for start in range(0, length, 2_000):
        await repo.events.append(stream, start, events[start : start + 2_000])
    loaded = await repo.load(Item, stream)
    assert loaded == rehydrate(registry, Item, stream, None, await repo.events.load(stream))
    assert (loaded.version, loaded.state.on_hand) == (length, length - 4 + 3 * 5)
    as_of_page = await repo.load(Item, stream, version=PAGE)
    assert (as_of_page.version, as_of_page.state.on_hand) == (PAGE, PAGE - 3 + 2 * 5)
