"""Given events, then rows: a projection folded on a real PostgreSQL, as a rebuild folds it.

`await kit.given(STOCK_LEVELS, stream.event(ItemRegistered(...)), ...)` appends the events
under a tenant of the test's own, folds them into a fresh copy of the projection (its own
name and schema, dropped at the end) through the Python handlers, and, when the projection
is declared as `Rules` that SQL can fold, a second time inside PostgreSQL: the two must give
the same rows, or the test fails naming the table. The rows come back as dicts, the tenant's
only, in primary-key order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel

from domain.contracts import Event, Metadata, StreamId
from domain.feed import START, FeedPosition
from domain.registry import Registry
from projections import set_fold
from projections.metadata import Projection
from pump.projections.rebuild import Rebuilder
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore

_HEAD = ("select transaction_id::text::bigint, position from intent.events"
         " order by transaction_id desc, position desc limit 1")


@dataclass
class Stream:
    """One aggregate's stream in the kit's tenant; `event` numbers its events in order."""

    registry: Registry
    id: StreamId
    version: int = 0

    def event(self, payload: BaseModel) -> Event:
        known = self.registry.event_name(payload)
        self.version += 1
        return Event(
            event_id=uuid4(), event_type=known.name, schema_version=known.version,
            stream=self.id, version=self.version, payload=payload.model_dump(mode="json"),
            metadata=Metadata(tenant_id=self.id.tenant_id, correlation_id=uuid4()),
        )


@dataclass
class Folded:
    """A projection's rows for the kit's tenant, by table."""

    tables: dict[str, list[dict[str, Any]]]
    folds: tuple[str, ...]  # "python", and "sql" when the rules were folded in SQL too

    def rows(self, table: str | None = None) -> list[dict[str, Any]]:
        if table is None:
            if len(self.tables) != 1:
                raise ValueError(f"name the table: one of {sorted(self.tables)}")
            return next(iter(self.tables.values()))
        return self.tables[table]


@dataclass
class ProjectionKit:
    pool: AsyncConnectionPool[Conn]
    registry: Registry
    tenant_id: UUID = field(default_factory=uuid4)
    _schemas: list[str] = field(default_factory=list)

    def stream(self, aggregate_type: str, aggregate_id: UUID | None = None) -> Stream:
        return Stream(self.registry, StreamId(tenant_id=self.tenant_id,
                                              aggregate_type=aggregate_type,
                                              aggregate_id=aggregate_id or uuid4()))

    async def given(self, projection: Projection, *events: Event) -> Folded:
        """Append `events` (each stream's in version order), fold them, return the rows."""
        start = await self._head()
        store = PostgresEventStore(self.pool, self.registry)
        for event in events:  # one transaction each, as commands append them
            await store.append(event.stream, event.version - 1, [event])
        python = await self._fold(projection, start, "python")
        if set_fold.unsupported(projection) is not None:
            return Folded(python, ("python",))
        in_sql = await self._fold(projection, start, "sql")
        for table, rows in python.items():
            if in_sql[table] != rows:
                raise AssertionError(
                    f"{projection.name}.{table}: the SQL fold gives other rows than the Python "
                    f"handlers\n python: {rows}\n    sql: {in_sql[table]}")
        return Folded(python, ("python", "sql"))

    async def close(self) -> None:
        """Drop every copy the kit made."""
        async with self.pool.connection() as conn:
            for schema in self._schemas:
                await conn.execute(
                    sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))

    async def _fold(self, base: Projection, start: FeedPosition, fold: str
                    ) -> dict[str, list[dict[str, Any]]]:
        tag = uuid4().hex[:10]
        copy = base.model_copy(update={"name": f"kit_{tag}", "schema_name": f"kit_{tag}",
                                       "realtime": False})
        self._schemas.append(copy.schema_name)
        rebuilder = Rebuilder(self.pool, copy, registry=self.registry,
                              fold=fold)  # type: ignore[arg-type]
        await rebuilder.run(start)
        return {t.name: await self._rows(copy, t.name) for t in copy.tables}

    async def _rows(self, projection: Projection, table: str) -> list[dict[str, Any]]:
        spec = projection.table(table)
        query = sql.SQL("select * from {} where tenant_id = %s order by {}").format(
            sql.Identifier(projection.schema_name, table),
            sql.SQL(", ").join(sql.Identifier(c) for c in spec.primary_key))
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, (self.tenant_id,))
            return await cur.fetchall()

    async def _head(self) -> FeedPosition:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(_HEAD)).fetchone()
        return FeedPosition(int(row[0]), int(row[1])) if row else START
