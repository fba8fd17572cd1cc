"""Helpers for the projection tests (runner, rebuild, inline): copies of the app's
projections under fresh names and schemas, created with projections.sql and dropped after,
and small readers of the feed, checkpoints and tables."""


from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Event
from projections.metadata import Projection
from projections.runner import (
    Checkpoint,
    ProjectionRunner,
    load_checkpoint,
    save_checkpoint,
)
from projections.sql import projection_ddl
from pump.database import Conn
from pump.event_store import AppendResult, PostgresEventStore
from pump.feed import START, FeedPosition


def fresh(base: Projection, **changes: Any) -> Projection:
    """`base` under a new name and schema (so a new consumer and new tables)."""
    tag = uuid4().hex[:10]
    update: dict[str, Any] = {"name": f"p_{tag}", "schema_name": f"s_{tag}", "realtime": False}
    return base.model_copy(update=update | changes)


class Made:
    """Creates projection tables for a test and drops their schemas afterwards."""

    def __init__(self, pool: AsyncConnectionPool[Conn]) -> None:
        self.pool = pool
        self.schemas: list[str] = []

    async def create(self, projection: Projection, *, at_head: bool = True) -> Projection:
        async with self.pool.connection() as conn, conn.transaction():
            for statement in projection_ddl(projection):
                await conn.execute(statement.encode())
        self.schemas.append(projection.schema_name)
        if at_head:
            await start_at_head(self.pool, projection)
        return projection

    async def drop_all(self) -> None:
        async with self.pool.connection() as conn:
            for schema in self.schemas:
                await conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema))
                )


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


async def table_rows(
    pool: AsyncConnectionPool[Conn], projection: Projection, *, tenant: UUID | None = None,
    table: str | None = None, physical: str | None = None,
) -> list[tuple[Any, ...]]:
    name = table or projection.tables[0].name
    spec = projection.table(name)
    query = sql.SQL("select * from {} {} order by {}").format(
        sql.Identifier(projection.schema_name, physical or name),
        sql.SQL("where tenant_id = %s" if tenant else ""),
        sql.SQL(", ").join(sql.Identifier(c) for c in spec.primary_key),
    )
    async with pool.connection() as conn:
        cur = await conn.execute(query, (tenant,) if tenant else None)
        return await cur.fetchall()


def stored(events: Sequence[Event], result: AppendResult) -> list[Event]:
    """The appended events as the feed returns them: with position and transaction id."""
    return [
        e.model_copy(update={"position": p, "transaction_id": result.transaction_id})
        for e, p in zip(events, result.positions, strict=True)
    ]


async def append(store: PostgresEventStore, events: list[Event], expected: int = 0,
                 conn: Conn | None = None) -> list[Event]:
    result = await store.append(events[0].stream, expected, events, conn=conn)
    return stored(events, result)


def runner_for(pool: AsyncConnectionPool[Conn], *projections: Projection,
               **options: Any) -> ProjectionRunner:
    return ProjectionRunner(pool, [p.model_copy(update={"mode": "async"}) for p in projections],
                            **options)


async def until(predicate: Any, seconds: float = 30, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


