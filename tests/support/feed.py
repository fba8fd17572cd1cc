"""Where the feed and its consumers are: the head of the feed, a consumer's checkpoint, and a
consumer started at the head (so that it sees only what a test appends after)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from domain.feed import START, FeedPosition
from projections.metadata import Projection
from pump.projections.checkpoints import Checkpoint, load_checkpoint, save_checkpoint
from pump.store.connections import Conn


async def head(pool: AsyncConnectionPool[Conn]) -> FeedPosition:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select transaction_id::text::bigint, position from intent.events"
            " order by transaction_id desc, position desc limit 1"
        )
        row = await cur.fetchone()
    return FeedPosition(int(row[0]), int(row[1])) if row else START


async def start_at_head(pool: AsyncConnectionPool[Conn], projection: Projection) -> None:
    position = await head(pool)
    async with pool.connection() as conn:
        await save_checkpoint(conn, projection.consumer, position)


async def checkpoint_of(pool: AsyncConnectionPool[Conn], consumer: str) -> Checkpoint:
    async with pool.connection() as conn:
        return await load_checkpoint(conn, consumer)
