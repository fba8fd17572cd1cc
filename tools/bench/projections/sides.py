"""What `intent bench projections` runs: its schema and events (set up untimed), the
four sides of a round (the rebuild by either fold path, the runner's catch-up, the COPY
baseline), the check of what the rebuild produced, and the cleanup."""

from __future__ import annotations

import gc
from time import perf_counter
from typing import Any
from uuid import uuid4

from psycopg import sql as pg_sql
from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress

from domain.feed import START, FeedPosition
from projections.ddl import projection_ddl, table_ddl
from projections.shop import registry
from pump.projections.checkpoints import save_checkpoint
from pump.projections.rebuild import FoldPath, Rebuilder, rebuild_consumer
from pump.projections.runner import ProjectionRunner
from pump.store.connections import Conn
from tools.bench.progress import add_task, advance, remove_task
from tools.bench.projections.plan import (
    COPY_TABLE,
    EVENTS_PER_ITEM,
    LOAD_CHUNK,
    PROJECTION,
    SCHEMA,
    TABLE,
    Plan,
)
from tools.bench.workload import RAW_COLUMNS, item_events, new_stream, raw_rows


class ProjectionsBench:
    def __init__(self, pool: AsyncConnectionPool[Conn], plan: Plan,
                 progress: Progress | None) -> None:
        self.pool = pool
        self.plan = plan
        self.progress = progress
        self.tenant_id = uuid4()

    async def setup(self) -> FeedPosition:
        """The bench schema from scratch; returns the feed head before the bench's events."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                pg_sql.SQL("drop schema if exists {} cascade").format(pg_sql.Identifier(SCHEMA))
            )
            for statement in projection_ddl(PROJECTION):
                await conn.execute(statement.encode())
            await conn.execute(
                "delete from intent.checkpoints where consumer = any(%s)",
                ([PROJECTION.consumer, rebuild_consumer(PROJECTION)],),
            )
            cur = await conn.execute(
                "select transaction_id::text::bigint, position from intent.events"
                " order by transaction_id desc, position desc limit 1"
            )
            row = await cur.fetchone()
        return FeedPosition(int(row[0]), int(row[1])) if row else START

    async def load(self) -> None:
        """The events, COPY'd in version-major order, LOAD_CHUNK rows per transaction."""
        plan = self.plan
        task = add_task(self.progress, "appending events (COPY)", plan.total_events)
        streams = [new_stream(self.tenant_id) for _ in range(plan.items)]
        histories = [item_events(s, EVENTS_PER_ITEM) for s in streams]
        ordered = [h[v] for v in range(EVENTS_PER_ITEM) for h in histories]
        statement = f"copy intent.events ({', '.join(RAW_COLUMNS)}) from stdin"
        for start in range(0, len(ordered), LOAD_CHUNK):
            chunk = raw_rows(ordered[start:start + LOAD_CHUNK])
            async with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor().copy(statement.encode()) as copy,
            ):
                for row in chunk:
                    await copy.write_row(row)
            advance(self.progress, task, len(chunk))
        # Settle the store as a running one is (visibility map, statistics), so that
        # autovacuum does not do it in the middle of a timed round.
        async with self.pool.connection() as conn:
            await conn.execute("vacuum (analyze) intent.events")

    async def rebuild(self, start: FeedPosition, title: str,
                      fold: FoldPath = "auto") -> tuple[float, float, int]:
        """(events/s of the whole rebuild, events/s until the swap, events read)."""
        task = add_task(self.progress, title, self.plan.total_events)

        def show(done: int, total: int) -> None:
            if self.progress is not None and task is not None:
                self.progress.update(task, completed=done, total=total)

        gc.collect()
        result = await Rebuilder(self.pool, PROJECTION, page_size=self.plan.page_size,
                                 on_progress=show, fold=fold, registry=registry).run(start)
        remove_task(self.progress, task)
        built = result.events - result.swap_events
        return (result.events / result.seconds, built / result.build_seconds, result.events)

    async def runner_catch_up(self, start: FeedPosition, title: str) -> float:
        """Events/s of the async runner catching the live table up from `start`, emptied
        first (as a new projection over an existing store)."""
        task = add_task(self.progress, title, self.plan.total_events)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(pg_sql.SQL("truncate {}").format(
                pg_sql.Identifier(SCHEMA, TABLE.name)))
            await save_checkpoint(conn, PROJECTION.consumer, start)
        runner = ProjectionRunner(self.pool, [PROJECTION], registry=registry)
        gc.collect()
        began = perf_counter()
        await runner.catch_up(PROJECTION)
        took = perf_counter() - began
        remove_task(self.progress, task)
        if runner.applied[PROJECTION.name] != self.plan.total_events:
            raise RuntimeError(f"the runner applied {runner.applied[PROJECTION.name]:,} "
                               f"events, not {self.plan.total_events:,}")
        return self.plan.total_events / took

    async def rows(self) -> list[tuple[Any, ...]]:
        """What the rebuild produced for the bench tenant, checked against the workload."""
        query = pg_sql.SQL("select * from {} where tenant_id = %s").format(
            pg_sql.Identifier(SCHEMA, TABLE.name)
        )
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(query, (self.tenant_id,))).fetchall()
        available = [row[4] for row in rows]
        if len(rows) != self.plan.items or set(available) != {EVENTS_PER_ITEM - 1}:
            raise RuntimeError(
                f"the rebuilt projection is wrong: {len(rows)} rows for {self.plan.items} "
                f"items, available values {sorted(set(available))[:5]}"
            )
        return rows

    async def copy(self, rows: list[tuple[Any, ...]]) -> float:
        """Rows/s of one COPY of `rows` into a fresh equivalent table."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                pg_sql.SQL("drop table if exists {}").format(
                    pg_sql.Identifier(SCHEMA, COPY_TABLE))
            )
            for statement in table_ddl(PROJECTION, TABLE, physical_name=COPY_TABLE,
                                       realtime=False):
                await conn.execute(statement.encode())
        copy_sql = pg_sql.SQL("copy {} from stdin").format(pg_sql.Identifier(SCHEMA, COPY_TABLE))
        gc.collect()
        began = perf_counter()
        async with (
            self.pool.connection() as conn,
            conn.transaction(),
            conn.cursor().copy(copy_sql) as copy,
        ):
            for row in rows:
                await copy.write_row(row)
        return len(rows) / (perf_counter() - began)

    async def cleanup(self) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                pg_sql.SQL("drop schema if exists {} cascade").format(pg_sql.Identifier(SCHEMA))
            )
            await conn.execute(
                "delete from intent.checkpoints where consumer = any(%s)",
                ([PROJECTION.consumer, rebuild_consumer(PROJECTION)],),
            )

