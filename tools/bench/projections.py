"""`intent bench projections`: how fast a projection is rebuilt from the feed, beside a COPY
of the rows it ends up with.

Workload: N stock events of one fresh tenant, over N/10 items (each registered, then nine
receipts of one unit), loaded with COPY into intent.events (as the worker role) in
version-major order: all items' first events, then all their second events, and so on, ten
thousand rows per transaction; then VACUUM ANALYZE (untimed). With at least as many items
as a page holds events (the full run: 10,000 items, pages of 2,000), no page touches a row
twice, so the fold in Python saves nothing: the honest case.

Intent side, per round: `Rebuilder.run` of a copy of the `stock_levels` projection (its own
schema, `intent_bench`) from the feed position just before the events: twin tables, the
catch-up, the swap. Its events/s is N divided by the whole rebuild's time. `stock_levels` is
declared as Rules, so its catch-up folds ranges of 25,000 events in SQL (projections.set_fold).
The same rebuild forced through the Python path (page by page: feed read, upcast, handler,
fold, one MERGE per page, checkpoint), which is what a projection whose handler is code gets,
is run in every round too and reported beside it, not judged; so is the runner's catch-up
(`ProjectionRunner` from a checkpoint just before the events, over an emptied live table:
SQL ranges of 25,000 events, each with its checkpoint), as a new async projection over an
existing store would catch up.

Baseline, per round, same cluster, same pool: COPY of exactly the rows the rebuild produced
(all columns, the guard columns included) into an equivalent table (projections.sql.table_ddl:
same columns, primary key, index, RLS), one transaction; rows/s.

The brief's ratio is the rebuild's events/s over the baseline's rows/s; the table also gives
the time ratio (COPY seconds / rebuild seconds), which is that ratio divided by the events
per row. Sides alternate first and second from round to round, after one untimed warm-up
rebuild (which also yields the rows for the COPY); medians over the rounds. The
order of the four (SQL-path rebuild, COPY, Python-path rebuild, runner catch-up) rotates from
round to round.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql as pg_sql
from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress, TaskID
from rich.table import Table

from projections.inventory import STOCK_LEVELS
from projections.rebuild import FoldPath, Rebuilder, rebuild_consumer
from projections.runner import ProjectionRunner, save_checkpoint
from projections.sql import projection_ddl, table_ddl
from pump.database import Conn, open_pool
from pump.feed import START, FeedPosition
from tools.bench.append import server_facts
from tools.bench.stats import (
    Comparison,
    Series,
    json_name,
    median,
    outcome_line,
    report_header,
    server_line,
    spread,
    verdict,
)
from tools.bench.workload import RAW_COLUMNS, item_events, new_stream, raw_rows

SCHEMA = "intent_bench"
PROJECTION = STOCK_LEVELS.model_copy(
    update={"name": "bench_stock_levels", "schema_name": SCHEMA, "mode": "async",
            "realtime": False}
)
TABLE = PROJECTION.tables[0]
COPY_TABLE = f"{TABLE.name}_copy"
EVENTS_PER_ITEM = 10
LOAD_CHUNK = 10_000

TARGET_EVENTS_PER_SECOND = 20_000.0
TARGET_RATIO = 0.40


@dataclass(frozen=True)
class Plan:
    name: str
    events: int
    rounds: int
    page_size: int = 2000

    @property
    def items(self) -> int:
        return max(1, self.events // EVENTS_PER_ITEM)

    @property
    def total_events(self) -> int:
        return self.items * EVENTS_PER_ITEM

    def with_events(self, events: int | None) -> Plan:
        if events is None:
            return self
        return Plan(self.name, events, self.rounds, self.page_size)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "events": self.total_events, "items": self.items,
                "events_per_item": EVENTS_PER_ITEM, "rounds": self.rounds,
                "page_size": self.page_size}


FULL = Plan("full", events=100_000, rounds=5)
QUICK = Plan("quick", events=5_000, rounds=2)


@dataclass
class Results:
    plan: Plan
    rebuild: Comparison  # intent: rebuild events/s; baseline: COPY rows/s
    catch_up: Series  # events/s until the swap (twins created and caught up)
    python_path: Series  # the same rebuild through the Python path, events/s
    runner: Series  # the async runner's catch-up from the same position, events/s
    time_ratios: list[float]  # per round: COPY seconds / rebuild seconds
    rows: int
    server: dict[str, Any]
    tenant_id: UUID
    started_at: datetime
    finished_at: datetime

    @property
    def events_met(self) -> bool:
        return self.rebuild.intent.median >= TARGET_EVENTS_PER_SECOND

    @property
    def all_met(self) -> bool:
        return self.events_met and self.rebuild.met

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        c = self.rebuild
        return {
            **report_header(
                "projections", self.started_at, self.finished_at, self.plan.as_json(),
                {**database, **self.server, "tenant_id": str(self.tenant_id)}, __doc__,
            ),
            "sections": {
                "rebuild": {
                    "intent": c.intent.as_json(),
                    "catch_up": self.catch_up.as_json(),
                    "baseline": c.baseline.as_json(),
                    "rows": self.rows,
                    "events_per_row": round(self.plan.total_events / max(self.rows, 1), 3),
                    "ratio": round(c.ratio, 4),
                    "paired_ratio": round(c.paired_ratio(c.baseline), 4),
                    "python_path": self.python_path.as_json(),
                    "python_path_ratio": round(
                        self.python_path.median / c.baseline.median, 4),
                    "runner_catch_up": self.runner.as_json(),
                    "runner_catch_up_ratio": round(self.runner.median / c.baseline.median, 4),
                    "time_ratio": round(median(self.time_ratios), 4),
                    "time_ratio_per_round": [round(v, 4) for v in self.time_ratios],
                    "targets": [
                        {"target": "rebuild events/s", "min": TARGET_EVENTS_PER_SECOND,
                         "value": round(c.intent.median, 1), "met": self.events_met},
                        {"target": "rebuild events/s / COPY rows/s", "min": TARGET_RATIO,
                         "value": round(c.ratio, 4), "met": c.met},
                    ],
                }
            },
        }


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
        task = self._task("appending events (COPY)", plan.total_events)
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
            self._advance(task, len(chunk))
        # Settle the store as a running one is (visibility map, statistics), so that
        # autovacuum does not do it in the middle of a timed round.
        async with self.pool.connection() as conn:
            await conn.execute("vacuum (analyze) intent.events")

    async def rebuild(self, start: FeedPosition, title: str,
                      fold: FoldPath = "auto") -> tuple[float, float, int]:
        """(events/s of the whole rebuild, events/s until the swap, events read)."""
        task = self._task(title, self.plan.total_events)

        def advance(done: int, total: int) -> None:
            if self.progress is not None and task is not None:
                self.progress.update(task, completed=done, total=total)

        gc.collect()
        result = await Rebuilder(self.pool, PROJECTION, page_size=self.plan.page_size,
                                 on_progress=advance, fold=fold).run(start)
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)
        built = result.events - result.swap_events
        return (result.events / result.seconds, built / result.build_seconds, result.events)

    async def runner_catch_up(self, start: FeedPosition, title: str) -> float:
        """Events/s of the async runner catching the live table up from `start`, emptied
        first (as a new projection over an existing store)."""
        task = self._task(title, self.plan.total_events)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(pg_sql.SQL("truncate {}").format(
                pg_sql.Identifier(SCHEMA, TABLE.name)))
            await save_checkpoint(conn, PROJECTION.consumer, start)
        runner = ProjectionRunner(self.pool, [PROJECTION])
        gc.collect()
        began = perf_counter()
        await runner.catch_up(PROJECTION)
        took = perf_counter() - began
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)
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
        on_hand = [row[4] for row in rows]
        if len(rows) != self.plan.items or set(on_hand) != {EVENTS_PER_ITEM - 1}:
            raise RuntimeError(
                f"the rebuilt projection is wrong: {len(rows)} rows for {self.plan.items} "
                f"items, on_hand values {sorted(set(on_hand))[:5]}"
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

    def _task(self, title: str, total: int) -> TaskID | None:
        return self.progress.add_task(title, total=total) if self.progress else None

    def _advance(self, task: TaskID | None, steps: int) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, steps)


async def run_projections(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    started = datetime.now(UTC)
    server = await server_facts(url)
    pool = await open_pool(url, min_size=2, max_size=4, name="bench")
    try:
        bench = ProjectionsBench(pool, plan, progress)
        try:
            start = await bench.setup()
            await bench.load()
            await bench.rebuild(start, "warm-up rebuild")
            rows = await bench.rows()
            rebuilds: list[float] = []
            catch_ups: list[float] = []
            copies: list[float] = []
            pythons: list[float] = []
            runners: list[float] = []
            times: list[float] = []
            for number in range(plan.rounds):
                prefix = f"round {number + 1}/{plan.rounds}"
                sides = ["sql", "copy", "python", "runner"]
                rate = catch_up = copy_rate = 0.0
                read = 0
                for side in sides[number % 4:] + sides[:number % 4]:
                    if side == "sql":
                        rate, catch_up, read = await bench.rebuild(start, f"{prefix}: rebuild")
                    elif side == "copy":
                        copy_rate = await bench.copy(rows)
                    elif side == "python":
                        through_python, _, _ = await bench.rebuild(
                            start, f"{prefix}: rebuild through Python", fold="python")
                        pythons.append(through_python)
                    else:
                        runners.append(await bench.runner_catch_up(
                            start, f"{prefix}: runner catch-up"))
                rebuilds.append(rate)
                catch_ups.append(catch_up)
                copies.append(copy_rate)
                times.append((len(rows) / copy_rate) / (read / rate))
            await bench.rows()
        finally:
            await bench.cleanup()
    finally:
        await pool.close()
    n = plan.total_events
    comparison = Comparison(
        intent=Series(
            "rebuild", f"Rebuilder.run of {PROJECTION.name} over {n:,} events (twins, "
            "catch-up, swap), events/s", "events/s", rebuilds,
        ),
        baseline=Series(
            "COPY", f"COPY of the {len(rows):,} rows the rebuild produced into an equivalent "
            "table, one transaction, rows/s", "rows/s", copies,
        ),
        min_ratio=TARGET_RATIO,
    )
    return Results(
        plan=plan,
        rebuild=comparison,
        catch_up=Series("build", "twins created and caught up (all but the swap), events/s",
                        "events/s", catch_ups),
        time_ratios=times,
        python_path=Series("python path", "the same rebuild forced through the Python path "
                           "(a projection whose handler is code), events/s", "events/s",
                           pythons),
        runner=Series("runner catch-up", "the async runner catching an emptied live table up "
                      "from the same position, events/s", "events/s", runners),
        rows=len(rows),
        server=server,
        tenant_id=bench.tenant_id,
        started_at=started,
        finished_at=datetime.now(UTC),
    )


def _cell(series: Series) -> str:
    return f"{series.median:,.0f} [dim]±{spread(series.per_round) * 100:.0f}%[/dim]"


def projections_table(results: Results) -> Table:
    c = results.rebuild
    plan = results.plan
    table = Table(
        title=(
            f"projection rebuild: {plan.total_events:,} events over {plan.items:,} items "
            f"(median of {plan.rounds} rounds)"
        ),
        caption=(
            "ratio = rebuild events/s ÷ COPY rows/s (in brackets: median of per-round ratios); "
            "time ratio = COPY seconds ÷ rebuild seconds; ± half the interquartile range"
        ),
    )
    table.add_column("")
    table.add_column("median", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    table.add_row("rebuild, events/s", _cell(c.intent), f"≥ {TARGET_EVENTS_PER_SECOND:,.0f}",
                  verdict(results.events_met))
    table.add_row("  until the swap, events/s", _cell(results.catch_up), "", "")
    table.add_row(f"COPY of the {results.rows:,} rows, rows/s", _cell(c.baseline), "", "")
    table.add_row("ratio", f"{c.ratio:.2f} [dim]({c.paired_ratio(c.baseline):.2f})[/dim]",
                  f"≥ {TARGET_RATIO:.2f}", verdict(c.met))
    table.add_row("time ratio", f"{median(results.time_ratios):.3f}", "", "")
    python = results.python_path
    table.add_row("rebuild through Python, events/s", _cell(python), "", "")
    table.add_row("  its ratio", f"{python.median / c.baseline.median:.2f}", "", "")
    runner = results.runner
    table.add_row("runner catch-up, events/s", _cell(runner), "", "")
    table.add_row("  its ratio", f"{runner.median / c.baseline.median:.2f}", "", "")
    return table


def summary_lines(results: Results) -> list[str]:
    return [server_line(results.server), outcome_line(results.all_met)]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("projections", now)
