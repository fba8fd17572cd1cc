"""The gateway's change feed deletes realtime.messages rows it no longer needs (hosted
Realtime drops old partitions; locally the rows would pile up), and only those."""

from __future__ import annotations

from uuid import uuid4

import pytest
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tools.gateway.realtime.wal import ChangeFeed

pytestmark = pytest.mark.integration


async def test_old_broadcast_rows_are_pruned_and_recent_ones_kept(
    database_url: str, pool: AsyncConnectionPool[Conn]
) -> None:
    topic = f"prune-test-{uuid4()}"
    old, recent = uuid4(), uuid4()
    async with pool.connection() as conn:
        await conn.execute(
            "insert into realtime.messages (id, topic, extension, event, payload, inserted_at)"
            " values (%s, %s, 'broadcast', 'e', '{}', now() - interval '2 hours'),"
            " (%s, %s, 'broadcast', 'e', '{}', now() - interval '5 minutes')",
            (old, topic, recent, topic),
        )

    async def ignore(_changes: object) -> None:
        return None

    feed = ChangeFeed(database_url, ignore)
    feed.start()
    try:
        assert await feed.wait_ready(seconds=30), feed.failed
        assert await feed.prune() >= 1
    finally:
        await feed.stop()
    async with pool.connection() as conn:
        cur = await conn.execute("select id from realtime.messages where topic = %s", (topic,))
        left = [row[0] for row in await cur.fetchall()]
        await conn.execute("delete from realtime.messages where topic = %s", (topic,))
    assert left == [recent]
