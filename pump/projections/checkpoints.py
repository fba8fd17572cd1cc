"""A consumer's place in the feed (intent.checkpoints) and the projection's advisory lock:
moved in the same transaction as the effects of the events before it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.feed import START, FeedPosition
from projections.metadata import Projection
from pump.store.connections import Conn


def lock_key(projection: Projection) -> int:
    """The projection's advisory-lock key: one per projection (not per version), so that two
    versions of a projection never write its live tables at the same time."""
    name = f"intent.projection:{projection.schema_name}.{projection.name}".encode()
    return int.from_bytes(blake2b(name, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class Checkpoint:
    position: FeedPosition
    error: dict[str, Any] | None
    exists: bool


async def load_checkpoint(conn: Conn, consumer: str) -> Checkpoint:
    cur = await conn.execute(
        "select transaction_id::text::bigint, position, error from intent.checkpoints"
        " where consumer = %s",
        (consumer,),
    )
    row = await cur.fetchone()
    if row is None:
        return Checkpoint(START, None, exists=False)
    return Checkpoint(FeedPosition(int(row[0]), int(row[1])), row[2], exists=True)


async def save_checkpoint(conn: Conn, consumer: str, position: FeedPosition) -> None:
    """Move the checkpoint (and clear its error): in the transaction of the page's effects."""
    await conn.execute(
        "insert into intent.checkpoints (consumer, transaction_id, position, error)"
        " values (%s, %s::text::xid8, %s, null) on conflict (consumer) do update"
        " set transaction_id = excluded.transaction_id, position = excluded.position,"
        " error = null, updated_at = now()",
        (consumer, str(position.transaction_id), position.position),
    )


async def record_error(conn: Conn, consumer: str, error: dict[str, Any]) -> None:
    """Note the error on the checkpoint without moving it."""
    await conn.execute(
        "insert into intent.checkpoints (consumer, error) values (%s, %s)"
        " on conflict (consumer) do update set error = excluded.error, updated_at = now()",
        (consumer, Jsonb(error)),
    )


async def tables_hold_rows(conn: Conn, projection: Projection) -> bool:
    for table in projection.tables:
        query = sql.SQL("select exists (select from {}.{})").format(
            sql.Identifier(projection.schema_name), sql.Identifier(table.name)
        )
        row = await (await conn.execute(query)).fetchone()
        if row and row[0]:
            return True
    return False


async def inline_catch_up_needed(
    pool: AsyncConnectionPool[Conn], projections: Iterable[Projection]
) -> list[Projection]:
    """Inline projections never rebuilt (no checkpoint) while the store holds events they
    read: they lack whatever happened before they were deployed."""
    needed = []
    async with pool.connection() as conn:
        for projection in projections:
            if projection.mode != "inline":
                continue
            if (await load_checkpoint(conn, projection.consumer)).exists:
                continue
            cur = await conn.execute(
                "select exists (select from intent.events where event_type = any(%s))",
                (list(projection.reads),),
            )
            row = await cur.fetchone()
            if row and row[0]:
                needed.append(projection)
    return needed
