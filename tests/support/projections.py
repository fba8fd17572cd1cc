"""Helpers for the projection tests (runner, rebuild, inline, schema, SQL): copies of the
app's projections under fresh names and schemas, created with projections.sql and dropped
after; a small `shelves` projection of no behaviour and the migration generated for it; and
small readers of the feed, checkpoints and tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from domain.contracts import Event
from projections import migration_state
from projections.ddl import projection_ddl
from projections.metadata import Column, Index, Op, Projection, Table
from projections.shop import registry
from pump.projections.runner import ProjectionRunner
from pump.store.connections import Conn
from tests.support.feed import start_at_head


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


def runner_for(pool: AsyncConnectionPool[Conn], *projections: Projection,
               **options: Any) -> ProjectionRunner:
    options.setdefault("registry", registry)
    return ProjectionRunner(pool, [p.model_copy(update={"mode": "async"}) for p in projections],
                            **options)


def no_ops(event: Event, payload: BaseModel) -> Sequence[Op]:
    """A projection handler that writes nothing: for projections tested by their tables."""
    return []


# A table whose `label` may not be null: a handler that leaves it out makes the database
# refuse the write.
THINGS = Table(
    name="things",
    columns=(Column(name="tenant_id", type="uuid", nullable=False),
             Column(name="id", type="uuid", nullable=False),
             Column(name="label", type="text", nullable=False)),
    primary_key=("tenant_id", "id"),
)

SHELF_COLUMNS = (
    Column(name="tenant_id", type="uuid", nullable=False),
    Column(name="shelf_id", type="uuid", nullable=False),
    Column(name="label", type="text"),
    Column(name="count", type="bigint", nullable=False, default=0),
)

# When a test's generated migration is stamped, unless it says otherwise.
GENERATED_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def shelves(
    schema: str | None = None,
    *,
    columns: Sequence[Column] = SHELF_COLUMNS,
    indexes: Sequence[Index] = (),
    primary_key: tuple[str, ...] = ("tenant_id", "shelf_id"),
    **overrides: Any,
) -> Projection:
    """One `shelves` table read by authenticated users, in `schema` (else the default)."""
    fields: dict[str, Any] = {
        "name": "shelves",
        "version": 1,
        "reads": ("inventory.stock_received",),
        "tables": (
            Table(name="shelves", columns=tuple(columns), primary_key=primary_key,
                  indexes=tuple(indexes)),
        ),
        "readers": ("authenticated",),
        "realtime": False,
        "handler": no_ops,
    }
    if schema is not None:
        fields["schema_name"] = schema
    return Projection(**(fields | overrides))


def generated(folder: Path, projection: Projection, when: datetime = GENERATED_AT,
              *, allow_destructive: bool = False) -> str:
    """The migration the generator writes into `folder` for `projection`, as text."""
    result = migration_state.generate(folder, [projection], allow_destructive=allow_destructive,
                                      now=when)
    assert result.written is not None
    return result.written.read_text(encoding="utf-8")
