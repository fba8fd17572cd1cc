"""The global feed: complete, in a stable order, and never past a transaction still open."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from domain.feed import START, FeedPosition
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from pump.store.feed import GlobalFeed
from tests.support.streams import history, new_stream, received, registered
from tests.support.tenants import TENANT_B

pytestmark = pytest.mark.integration


async def head(feed: GlobalFeed) -> FeedPosition:
    """The position after everything committed so far (the feed is shared by all tests)."""
    position = START
    while True:
        page = await feed.read(position, limit=1000)
        if not page.events:
            return position
        position = page.next


async def ids_after(feed: GlobalFeed, position: FeedPosition) -> list[UUID]:
    seen: list[UUID] = []
    while True:
        page = await feed.read(position, limit=2)
        if not page.events:
            return seen
        seen += [e.event_id for e in page.events]
        assert page.next > position
        position = page.next


async def test_feed_pages_through_every_stream_in_commit_batches(
    feed: GlobalFeed, store: PostgresEventStore
) -> None:
    start = await head(feed)
    a, b = new_stream(), new_stream(TENANT_B)
    first, second = history(a, 3), history(b, 2)
    await store.append(a, 0, first)
    await store.append(b, 0, second)
    assert await ids_after(feed, start) == [e.event_id for e in first + second]


async def test_reader_waits_for_a_late_commit_and_then_sees_it(
    feed: GlobalFeed, store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    start = await head(feed)
    slow, fast = new_stream(), new_stream()
    slow_event, fast_event = registered(slow), registered(fast)
    async with pool.connection() as held:
        # The slow writer takes its position first and keeps its transaction open...
        await held.execute("begin")
        await store.append(slow, 0, [slow_event], conn=held)
        # ...while a later writer commits.
        await store.append(fast, 0, [fast_event])
        page = await feed.read(start)
        assert page.events == []
        assert page.next == start
        hold = await feed.held_back(start)
        assert hold.held
        assert hold.waiting_events == 1
        assert hold.oldest_open_pid == held.info.backend_pid
        assert hold.oldest_open_age is not None
        await held.execute("commit")
    assert await ids_after(feed, start) == [slow_event.event_id, fast_event.event_id]
    assert not (await feed.held_back(await head(feed))).held


async def test_rolled_back_events_never_reach_the_feed(
    feed: GlobalFeed, store: PostgresEventStore, pool: AsyncConnectionPool[Conn]
) -> None:
    start = await head(feed)
    lost, kept = new_stream(), new_stream()
    kept_event = registered(kept)
    async with pool.connection() as conn:
        await conn.execute("begin")
        await store.append(lost, 0, [registered(lost)], conn=conn)
        await store.append(kept, 0, [kept_event])
        await conn.execute("rollback")
    assert await ids_after(feed, start) == [kept_event.event_id]


async def test_concurrent_writers_are_read_exactly_once(
    feed: GlobalFeed, store: PostgresEventStore
) -> None:
    start = await head(feed)
    streams = [new_stream() for _ in range(10)]
    written: set[UUID] = set()

    async def writer(stream_index: int) -> None:
        stream = streams[stream_index]
        events = [registered(stream)] + [received(stream, v) for v in range(2, 6)]
        for event in events:
            await store.append(stream, event.version - 1, [event])
            written.add(event.event_id)

    reader_seen: list[UUID] = []

    async def reader(stop: asyncio.Event) -> None:
        position = start
        while True:
            page = await feed.read(position, limit=7)
            reader_seen.extend(e.event_id for e in page.events)
            position = page.next
            if stop.is_set() and not page.events:
                return
            await asyncio.sleep(0)

    stop = asyncio.Event()
    reading = asyncio.create_task(reader(stop))
    await asyncio.gather(*(writer(i) for i in range(len(streams))))
    stop.set()
    await reading
    assert len(reader_seen) == len(set(reader_seen)) == 50
    assert set(reader_seen) == written
