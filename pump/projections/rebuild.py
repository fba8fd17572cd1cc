"""Rebuild a projection from the feed beside the live one, then swap it in (blue/green).

1. Twins: `<table>__rebuild` for every table (projections.sql.table_ddl with the twin's
   name, out of the Realtime publication), and a checkpoint of their own
   (`<consumer>:rebuild`), at the start of the feed or at `--from-position` (then the rows
   reflect only the events after that position).
2. Catch-up: the twins follow the feed, each step one transaction with the twin checkpoint.
   A projection declared as Rules is folded in SQL, 25,000 events a step
   (projections.set_fold); any other goes page by page through Python, like the runner.
   The live tables are untouched and readable.
3. Swap, in one short transaction: take the projection's advisory lock (the runner skips
   it meanwhile), apply what arrived since the catch-up, rename live -> `__old` and twin ->
   live (with their indexes and primary key: projections.sql.rename_table), drop the old
   tables, put a realtime projection's table back in the publication, and set the live
   checkpoint to where the rebuild ended. Readers wait only for this transaction.

Inline projections: the worker writes their live tables in its own transactions, so the
swap first locks the live tables (ACCESS EXCLUSIVE, the same lock the renames need, in the
applier's table order). That waits for every worker transaction that has written to them
and makes the next ones wait. Every committed event is then visible; those after the twin's
checkpoint are applied (without the feed's horizon: a transaction still open has not written
these tables, and will write to the new ones once the swap commits). The live checkpoint of
an inline projection only records where its last rebuild ended.

A swap that cannot get its locks within `lock_timeout` (a long report reading the table, a
long batch) gives up, catches up again and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql as pg_sql
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Event
from domain.errors import InvalidEvent
from domain.feed import START, FeedPosition
from domain.registry import Registry
from projections import access_sql, ddl, set_fold, sql
from projections.apply import Applier
from projections.errors import ProjectionError, WriteError
from projections.metadata import Projection
from projections.writes import WritePlan
from pump.projections.checkpoints import lock_key, record_error, save_checkpoint
from pump.projections.pages import (
    Page,
    RawPage,
    decode_events,
    fetch_page,
    fewer_collections,
    read_page,
)
from pump.store.connections import Conn

log = logging.getLogger("intent.projections")

TWIN_SUFFIX, OLD_SUFFIX = sql.TWIN_SUFFIXES
PAGE_SIZE = 2000

Progress = Callable[[int, int], None]  # (events read so far, events expected in all)
FoldPath = Literal["auto", "sql", "python"]
SQL_CHUNK = 25_000  # events per transaction on the SQL path


def twin_name(table: str) -> str:
    return sql.identifier(f"{table}{TWIN_SUFFIX}").name


def old_name(table: str) -> str:
    return sql.identifier(f"{table}{OLD_SUFFIX}").name


def rebuild_consumer(projection: Projection) -> str:
    return f"{projection.consumer}:rebuild"


def parse_position(text: str) -> FeedPosition:
    """`TXID:POS`, as the feed and intent.checkpoints give it."""
    txid, sep, position = text.partition(":")
    if not sep or not txid.strip().isdigit() or not position.strip().isdigit():
        raise ValueError(f"{text!r} is not a feed position: expected TXID:POS, e.g. 1234:56")
    return FeedPosition(int(txid), int(position))


class RebuildError(Exception):
    """The rebuild stopped; the live tables are unchanged."""


@dataclass(frozen=True)
class RebuildResult:
    projection: str
    start: FeedPosition
    end: FeedPosition
    events: int  # feed events read, catch-up and swap together
    handled: int  # of which the projection reads
    build_seconds: float  # twins created and caught up
    swap_seconds: float
    swap_events: int  # read inside the swap transaction
    swap_attempts: int

    @property
    def seconds(self) -> float:
        return self.build_seconds + self.swap_seconds

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Rebuilder:
    """One rebuild of one projection; `run` does it all, the steps are public for tests."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        projection: Projection,
        *,
        registry: Registry,
        page_size: int = PAGE_SIZE,
        lock_timeout: float = 5.0,
        swap_attempts: int = 10,
        on_progress: Progress | None = None,
        fold: FoldPath = "auto",
    ) -> None:
        self._pool = pool
        self.projection = projection
        self._page_size = page_size
        self._lock_timeout = lock_timeout
        self._swap_attempts = swap_attempts
        self._on_progress = on_progress
        self._twins = {t.name: twin_name(t.name) for t in projection.tables}
        self._applier = Applier(projection, registry=registry, physical=self._twins)
        why = set_fold.unsupported(projection)
        if fold == "sql" and why is not None:
            raise ValueError(f"projection {projection.name} cannot be folded in SQL: {why}")
        self._set_fold = (
            set_fold.SetFold(self._applier) if why is None and fold != "python" else None
        )
        self.ranges = {"sql": 0, "python": 0}  # SQL-path ranges folded by each path
        self._read = 0
        self._handled = 0
        self._expected = 0
        self._deferred: list[str] = []  # index statements to run before the swap

    async def run(self, start: FeedPosition = START) -> RebuildResult:
        """Twins from `start`, caught up, swapped in."""
        began = time.perf_counter()
        await self.prepare(start)
        position = await self.catch_up(start)
        caught_up = time.perf_counter()
        before = self._read
        position, attempts = await self.swap(position)
        return RebuildResult(
            projection=self.projection.name,
            start=start,
            end=position,
            events=self._read,
            handled=self._handled,
            build_seconds=caught_up - began,
            swap_seconds=time.perf_counter() - caught_up,
            swap_events=self._read - before,
            swap_attempts=attempts,
        )

    async def prepare(self, start: FeedPosition) -> None:
        """Fresh twins (a previous, interrupted rebuild's are dropped) and their checkpoint."""
        projection = self.projection
        schema = projection.schema_name
        async with self._pool.connection() as conn, conn.transaction():
            for statement in access_sql.schema_ddl(schema, projection.readers):
                await conn.execute(statement.encode())
            self._deferred = []
            for table in projection.tables:
                twin = self._twins[table.name]
                await conn.execute(sql.drop_table(schema, twin).encode())
                await conn.execute(sql.drop_table(schema, old_name(table.name)).encode())
                # Secondary indexes are built once the twin is filled (one sort, instead of
                # maintaining them row by row through the catch-up); the primary key stays,
                # every page's MERGE looks rows up by it.
                later = [sql.create_index(schema, twin, index) for index in table.indexes]
                self._deferred += later
                for statement in ddl.table_ddl(projection, table, physical_name=twin,
                                               realtime=False):
                    if statement not in later:
                        await conn.execute(statement.encode())
            await save_checkpoint(conn, rebuild_consumer(projection), start)
            cur = await conn.execute(
                "select count(*) from intent.events"
                " where (transaction_id, position) > (%s::text::xid8, %s)",
                (str(start.transaction_id), start.position),
            )
            row = await cur.fetchone()
        self._expected = int(row[0]) if row else 0
        self._progress()

    @property
    def fold_path(self) -> str:
        """"sql" when the catch-up folds ranges in SQL, else "python"."""
        return "sql" if self._set_fold is not None else "python"

    async def catch_up(self, position: FeedPosition) -> FeedPosition:
        """Fill the twins up to the feed's horizon: in SQL for a projection declared as Rules
        (projections.set_fold), else page by page through Python."""
        try:
            if self._set_fold is not None:
                return await self._catch_up_in_sql(position, self._set_fold)
            return await self._catch_up_in_python(position)
        except ProjectionError as exc:
            await self._fail(exc)
            raise RebuildError(str(exc)) from exc
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            # Pipelined statements report a refused write when the page commits.
            error = WriteError(f"{str(exc).strip()}", projection=self.projection.name)
            await self._fail(error)
            raise RebuildError(str(error)) from exc
        except InvalidEvent as exc:  # a stored event that is not a valid envelope
            invalid = ProjectionError(exc.message, projection=self.projection.name)
            await self._fail(invalid)
            raise RebuildError(str(invalid)) from exc

    async def _catch_up_in_sql(self, position: FeedPosition, fold: set_fold.SetFold) -> (
            FeedPosition):
        """Ranges of SQL_CHUNK events, each one transaction with the twin checkpoint. A range
        with events of an older schema version, or one whose statements fail on the data
        (a cast, a constraint), is applied through the Python path instead, which upcasts,
        or names the event at fault."""
        consumer = rebuild_consumer(self.projection)
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                upto = await set_fold.next_range(conn, position, fold, limit=SQL_CHUNK)
                if upto is None:
                    return position
                folded = await set_fold.fold_range(conn, fold, position, upto)
                if not folded:
                    await self._apply_range(conn, position, upto.events)
                await save_checkpoint(conn, consumer, upto.end)
                self.ranges["sql" if folded else "python"] += 1
            position = upto.end
            self._read += upto.events
            self._handled += upto.handled
            self._progress()

    async def _apply_range(self, conn: Conn, position: FeedPosition, count: int) -> None:
        """The next `count` feed events through the Python path, in the caller's
        transaction."""
        while count > 0:
            page = await read_page(conn, position, limit=min(self._page_size, count),
                                   types=self._applier.reads)
            if not page.read:
                raise RebuildError(f"rebuild of {self.projection.name}: the feed after "
                                   f"{position} ended {count} events early")
            await self._applier.apply(conn, page.events)
            position = page.next
            count -= page.read

    async def _catch_up_in_python(self, position: FeedPosition) -> FeedPosition:
        """Pages into the twins until the feed has nothing more (below its horizon).

        Three stages overlap, so that the database works on two pages while Python decodes
        and folds a third: fetching (a connection of its own, autocommit), decoding and
        folding, writing. Pages are still written in order, each with its checkpoint; what
        was fetched is below the horizon, so final, whichever transaction applies it."""
        consumer = rebuild_consumer(self.projection)
        fetched: asyncio.Queue[RawPage | BaseException | None] = asyncio.Queue(maxsize=2)
        planned: asyncio.Queue[tuple[Page, WritePlan] | BaseException | None] = (
            asyncio.Queue(maxsize=2)
        )
        stages = [
            asyncio.create_task(self._fetch_ahead(position, fetched)),
            asyncio.create_task(self._plan_ahead(fetched, planned)),
        ]
        try:
            with fewer_collections():
                while True:
                    item = await planned.get()
                    if item is None:
                        return position
                    if isinstance(item, BaseException):
                        raise item
                    page, plan = item
                    # Pipelined: the page's statements go out together and this task waits
                    # once, not once per statement behind the planner's turns on the loop.
                    async with (
                        self._pool.connection() as conn,
                        conn.pipeline(),
                        conn.transaction(),
                    ):
                        await conn.execute("set local synchronous_commit = off")
                        result = await self._applier.write(conn, plan, page.events,
                                                           counted=False)
                        await save_checkpoint(conn, consumer, page.next)
                    position = page.next
                    self._read += page.read
                    self._handled += result.handled
                    self._progress()
        finally:
            for stage in stages:
                stage.cancel()
            for stage in stages:
                with contextlib.suppress(asyncio.CancelledError):
                    await stage

    async def _fetch_ahead(
        self, position: FeedPosition, out: asyncio.Queue[RawPage | BaseException | None]
    ) -> None:
        try:
            async with self._pool.connection() as conn:
                while True:
                    raw = await fetch_page(conn, position, limit=self._page_size,
                                           types=self._applier.reads)
                    if not raw.read:
                        await out.put(None)
                        return
                    await out.put(raw)
                    position = raw.next
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed on to the writer, which stops the rebuild with it
            await out.put(exc)

    async def _plan_ahead(
        self,
        source: asyncio.Queue[RawPage | BaseException | None],
        out: asyncio.Queue[tuple[Page, WritePlan] | BaseException | None],
    ) -> None:
        while True:
            raw = await source.get()
            if raw is None or isinstance(raw, BaseException):
                await out.put(raw)
                return
            try:
                fold = self._applier.fold()
                events: list[Event] = []
                for chunk in raw.chunks:
                    part = decode_events(chunk)
                    fold.add(part)
                    events += part
                    await asyncio.sleep(0)  # the writer's turn: its page must not wait for ours
                plan = fold.plan()
            except Exception as exc:  # handed on to the writer, as above
                await out.put(exc)
                return
            await out.put((Page(events, raw.next, raw.read), plan))

    async def swap(self, position: FeedPosition) -> tuple[FeedPosition, int]:
        """Swap the twins in; returns where the rebuild ended and the attempts it took."""
        if self._deferred:
            async with self._pool.connection() as conn, conn.transaction():
                for statement in self._deferred:
                    await conn.execute(statement.encode())
            self._deferred = []
        for attempt in range(1, self._swap_attempts + 1):
            try:
                return await self._swap_once(position), attempt
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
                log.warning("rebuild of %s: swap attempt %d could not get its locks (%s); "
                            "catching up and retrying", self.projection.name, attempt,
                            str(exc).strip())
                await asyncio.sleep(min(0.2 * attempt, 2.0))
                position = await self.catch_up(position)
            except ProjectionError as exc:
                await self._fail(exc)
                raise RebuildError(str(exc)) from exc
        raise RebuildError(
            f"rebuild of {self.projection.name}: no swap after {self._swap_attempts} attempts "
            "(something holds the tables or the projection's lock); the twins are left in "
            "place, run the rebuild again"
        )

    async def _swap_once(self, position: FeedPosition) -> FeedPosition:
        projection = self.projection
        schema = projection.schema_name
        inline = projection.mode == "inline"
        read = handled = 0
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("select set_config('lock_timeout', %s, true)",
                               (f"{int(self._lock_timeout * 1000)}ms",))
            await conn.execute("select pg_advisory_xact_lock(%s)", (lock_key(projection),))
            live = await self._live_tables(conn)
            if inline and live:
                await conn.execute(
                    pg_sql.SQL("lock table {} in access exclusive mode").format(
                        pg_sql.SQL(", ").join(
                            pg_sql.Identifier(schema, name) for name in sorted(live)
                        )
                    )
                )
            while True:
                page = await read_page(conn, position, limit=self._page_size,
                                       types=self._applier.reads, horizon=not inline)
                if not page.read:
                    break
                result = await self._applier.apply(conn, page.events)
                position = page.next
                read += page.read
                handled += result.handled
            for table in sorted(projection.tables, key=lambda t: t.name):
                statements = []
                if table.name in live:
                    statements += ddl.rename_table(projection, table, from_name=table.name,
                                                   to_name=old_name(table.name))
                statements += ddl.rename_table(projection, table,
                                               from_name=self._twins[table.name],
                                               to_name=table.name)
                if table.name in live:
                    statements.append(sql.drop_table(schema, old_name(table.name)))
                if projection.realtime:
                    statements.append(access_sql.publication_add(schema, table.name))
                for statement in statements:
                    await conn.execute(statement.encode())
            await save_checkpoint(conn, projection.consumer, position)
            await conn.execute("delete from intent.checkpoints where consumer = %s",
                               (rebuild_consumer(projection),))
        self._read += read
        self._handled += handled
        self._progress()
        return position

    async def _live_tables(self, conn: Conn) -> set[str]:
        names = [t.name for t in self.projection.tables]
        cur = await conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p')",
            (self.projection.schema_name, names),
        )
        return {row[0] for row in await cur.fetchall()}

    async def _fail(self, exc: ProjectionError) -> None:
        try:
            async with self._pool.connection() as conn:
                await record_error(conn, rebuild_consumer(self.projection), exc.as_json())
        except psycopg.Error as recording:
            log.error("rebuild of %s: could not record the error: %s", self.projection.name,
                      recording)

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress(self._read, max(self._expected, self._read))


async def rebuild(
    pool: AsyncConnectionPool[Conn],
    projection: Projection,
    *,
    start: FeedPosition = START,
    registry: Registry,
    page_size: int = PAGE_SIZE,
    lock_timeout: float = 5.0,
    on_progress: Progress | None = None,
    fold: FoldPath = "auto",
) -> RebuildResult:
    """Rebuild one projection from `start` (default: the whole feed) and swap it in."""
    return await Rebuilder(
        pool, projection, registry=registry, page_size=page_size, lock_timeout=lock_timeout,
        on_progress=on_progress, fold=fold,
    ).run(start)
