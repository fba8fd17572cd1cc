"""`intent bench append`: append throughput and aggregate load times, beside raw baselines.

Every Intent figure has a baseline measured in the same run, on the same database, through
the same driver and pool. The sides take turns within each round (the order rotates from
round to round, so none always runs on a warmer or fuller table), and the report gives the
median over the rounds and the ratio of the medians.

Two raw baselines for each throughput section: the target is judged against the stricter
one, whose JSON is serialised before the timed loop (the database's own cost, nothing else);
the other passes Python dicts through psycopg's `Jsonb`, serialised while timed, as an
application writing its own JSON would.

Throughput sections (events per second, higher is better):

  (a) one writer, one event per transaction: `PostgresEventStore.append` of one pre-built
      event at a time, as `AggregateRepository.save` calls it (payloads were validated once,
      by the domain, before timing), vs a plain single-row INSERT into `bench_raw.events`;
  (b) the same with 8 writers (8 asyncio tasks sharing a pool of 8);
  (c) appends of 100 events vs COPY of 100 rows per transaction.

`bench_raw.events` is `like intent.events including all`: the same columns, defaults,
identity, constraints and indexes. Each round gives every writer a fresh stream and appends
its versions 1, 2, 3, ... in order, so every Intent append also reads the stream's head.

Load section (milliseconds, lower is better): `AggregateRepository.load` of an inventory item
whose stream holds 1,000 or 10,000 events, with snapshots (every 50 events, as the repository
writes them; also as of version N-1, which replays the 49 events after the previous snapshot,
the most the policy leaves) and without, beside `select payload ... order by version` plus a
sum in Python.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress, TaskID
from rich.table import Table

from domain.app import registry
from domain.contracts import Event, StreamId
from domain.decider import Loaded
from domain.inventory import Item, ItemState
from pump.aggregates import AggregateRepository
from pump.database import Conn, open_pool
from tools.bench.stats import Comparison, Series, json_name, spread, verdict
from tools.bench.workload import (
    RAW_COLUMNS,
    RawRow,
    item_events,
    new_stream,
    raw_rows,
)

RAW_SCHEMA = "bench_raw"
RAW_TABLE = f"{RAW_SCHEMA}.events"
_COLUMNS = ", ".join(RAW_COLUMNS)
INSERT_RAW = (
    f"insert into {RAW_TABLE} ({_COLUMNS}) values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, "
    "%s::jsonb)"
)
COPY_RAW = f"copy {RAW_TABLE} ({_COLUMNS}) from stdin"
SELECT_PAYLOADS = (
    "select payload from intent.events where tenant_id = %s and aggregate_type = %s"
    " and aggregate_id = %s order by version"
)
SETTINGS = (
    "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "wal_level",
    "shared_buffers", "max_connections",
)

TARGET_SINGLE = 0.85
TARGET_CONCURRENT = 0.85
TARGET_BATCH = 0.60
# Not given with the brief's targets: how much slower a snapshot load of a 10x longer stream
# may be and still count as "does not grow with stream length".
TARGET_LOAD_GROWTH = 1.5
# (d): a round's figure for a case is the mean of enough loads to take about this long.
LOAD_ROUND_MS = 50.0
LOAD_REPEAT_MAX = 20

Timed = Callable[[], Awaitable[int]]  # the timed work; returns how many events it wrote


@dataclass(frozen=True)
class Plan:
    """How much work: rounds and sizes per section."""

    name: str
    rounds: int  # paired rounds of (a), (b) and (c)
    single_events: int  # (a): events per side per round
    writers: int  # (b): concurrent writers, and the pool size
    concurrent_events: int  # (b): events per writer per side per round
    batch_size: int  # (c): events per append / rows per COPY
    batches: int  # (c): batches per side per round
    load_lengths: tuple[int, ...]  # (d): stream lengths
    load_rounds: int  # (d): timed loads of each case
    snapshot_every: int = Item.snapshot_every or 50  # (d): events per save while building

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "single_events_per_round": self.single_events,
            "writers": self.writers,
            "concurrent_events_per_writer_per_round": self.concurrent_events,
            "batch_size": self.batch_size,
            "batches_per_round": self.batches,
            "load_lengths": list(self.load_lengths),
            "load_rounds": self.load_rounds,
        }


FULL = Plan(
    name="full", rounds=30, single_events=300, writers=8, concurrent_events=75,
    batch_size=100, batches=20, load_lengths=(1_000, 10_000), load_rounds=15,
)
QUICK = Plan(
    name="quick", rounds=3, single_events=60, writers=8, concurrent_events=15,
    batch_size=100, batches=4, load_lengths=(1_000, 10_000), load_rounds=3,
)


# (d): the ways an item is loaded, and what each means.
LOAD_KINDS = ("snapshots", "snapshot_tail", "no_snapshots", "baseline")
SNAPSHOT_KINDS = ("snapshots", "snapshot_tail")


@dataclass
class LoadResults:
    lengths: tuple[int, ...]
    series: dict[str, dict[int, Series]] = field(
        default_factory=lambda: {kind: {} for kind in LOAD_KINDS}
    )
    snapshot_counts: dict[int, int] = field(default_factory=dict)
    replayed: dict[tuple[str, int], int] = field(default_factory=dict)
    loads_per_round: dict[tuple[str, int], int] = field(default_factory=dict)

    def growth(self, kind: str) -> float:
        """Load time of the longest stream over that of the shortest."""
        cases = self.series[kind]
        return cases[max(self.lengths)].median / cases[min(self.lengths)].median

    def ratio_to_baseline(self, kind: str, length: int) -> float:
        return self.series[kind][length].median / self.series["baseline"][length].median

    @property
    def met(self) -> bool:
        return all(self.growth(kind) <= TARGET_LOAD_GROWTH for kind in SNAPSHOT_KINDS)

    def as_json(self) -> dict[str, Any]:
        short, long = min(self.lengths), max(self.lengths)
        return {
            "unit": "ms",
            "stream_lengths": list(self.lengths),
            "how_built": (
                "AggregateRepository.save of the item's events in batches of "
                f"{Item.snapshot_every}, so the repository wrote a snapshot at every "
                f"multiple of {Item.snapshot_every}"
            ),
            "kinds": {kind: _load_description(kind, "N") for kind in LOAD_KINDS},
            "snapshots_stored": {str(k): v for k, v in self.snapshot_counts.items()},
            "events_replayed_after_snapshot": {
                f"{kind}_{n}": v for (kind, n), v in self.replayed.items()
            },
            "baseline": (
                "select payload from intent.events where tenant_id, aggregate_type, "
                "aggregate_id = the stream order by version, fetched through the same pool, "
                "then a Python sum of payload['quantity']"
            ),
            "loads_per_round": {f"{k}_{n}": v for (k, n), v in self.loads_per_round.items()},
            "per_round_is": "the mean of loads_per_round loads of the case, back to back",
            "cases": {
                f"{kind}_{length}": self.series[kind][length].as_json()
                for kind in LOAD_KINDS
                for length in self.lengths
            },
            "growth": {
                kind: round(self.growth(kind), 4) for kind in LOAD_KINDS
            },
            "growth_is": f"median load of {long} events / median load of {short} events",
            "growth_with_snapshots": {
                "ratio": round(self.growth("snapshots"), 4),
                "ratio_with_tail": round(self.growth("snapshot_tail"), 4),
                "target_max": TARGET_LOAD_GROWTH,
                "met": self.met,
            },
            "vs_baseline": {
                f"{kind}_{n}": round(self.ratio_to_baseline(kind, n), 4)
                for kind in LOAD_KINDS[:3]
                for n in self.lengths
            },
        }


@dataclass
class Results:
    plan: Plan
    single: Comparison
    concurrent: Comparison
    batch: Comparison
    load: LoadResults
    server: dict[str, Any]
    started_at: datetime
    finished_at: datetime

    @property
    def all_met(self) -> bool:
        return self.single.met and self.concurrent.met and self.batch.met and self.load.met

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            "benchmark": "append",
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 2),
            "plan": self.plan.as_json(),
            "database": {**database, **self.server},
            "machine": {
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
                "platform": platform.platform(),
            },
            "method": (
                "Sections (a)-(c) run the Intent side and two raw baselines once per round, "
                "in an order rotated every round, after one untimed warm-up round of each; "
                "figures are medians over the rounds and ratios are of the medians (paired "
                "per-round ratios are given too). Events are built and validated before the "
                "timed part. The target baseline gets its JSON serialised before the timed "
                "part (the strictest floor); the second baseline passes Python dicts through "
                "psycopg's Jsonb wrapper, so the driver serialises them while timed, as an "
                "application inserting its own JSON would. Each writer appends versions 1, "
                "2, 3, ... of a fresh stream per round. Every side uses one psycopg "
                "AsyncConnectionPool from pump.database.open_pool (autocommit, server-side "
                f"prepared statements), of {self.plan.writers} connections. Baseline rows "
                f"go to {RAW_TABLE} (like intent.events including all)."
            ),
            "sections": {
                "single_writer": _comparison_json(
                    self.single, "one writer, one event per transaction",
                    {"events_per_round": self.plan.single_events},
                ),
                "concurrent_writers": _comparison_json(
                    self.concurrent,
                    f"{self.plan.writers} concurrent writers (asyncio tasks, pool of "
                    f"{self.plan.writers}), one event per transaction, each on its own stream",
                    {
                        "writers": self.plan.writers,
                        "events_per_writer_per_round": self.plan.concurrent_events,
                    },
                ),
                "batch_append": _comparison_json(
                    self.batch,
                    f"{self.plan.batch_size} events per append vs COPY of "
                    f"{self.plan.batch_size} rows per transaction",
                    {"batch_size": self.plan.batch_size, "batches_per_round": self.plan.batches},
                ),
                "aggregate_load": self.load.as_json(),
            },
            "targets_met": self.all_met,
        }


def _comparison_json(c: Comparison, what: str, sizes: dict[str, int]) -> dict[str, Any]:
    def beside(series: Series) -> dict[str, Any]:
        return {
            **series.as_json(),
            "intent_ratio": round(c.ratio_to(series), 4),
            "paired_ratio_median": round(c.paired_ratio(series), 4),
        }

    return {
        "what": what,
        "unit": "events/s",
        **sizes,
        "intent": c.intent.as_json(),
        "baseline": beside(c.baseline),
        "other_baselines": [beside(other) for other in c.also],
        "ratio": round(c.ratio, 4),
        "ratio_is": (
            "median Intent events/s / median baseline events/s (the target baseline: JSON "
            "pre-serialised, the strictest)"
        ),
        "target": {"min_ratio": c.min_ratio, "met": c.met},
    }


class AppendBench:
    """The four sections against one pool; `progress` shows how far each has got."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        plan: Plan,
        progress: Progress | None = None,
        tenant_id: UUID | None = None,
    ):
        self.pool = pool
        self.plan = plan
        self.progress = progress
        self.tenant_id = tenant_id or uuid4()  # every stream of this run is under it
        self.repo = AggregateRepository(pool, registry)
        # The store exactly as the write path uses it: `AggregateRepository.save` has
        # validated every payload (by evolving it) before it appends, so its store does not
        # validate again. A store given a registry would add that check to every append.
        self.store = self.repo.events

    # -- the sides: each builds its input untimed and returns the timed work --------------

    def _intent_writers(self, writers: int, events_each: int, batch: int = 1) -> Timed:
        work: list[tuple[StreamId, list[list[Event]]]] = []
        for _ in range(writers):
            stream = new_stream(self.tenant_id)
            events = item_events(stream, events_each)
            work.append((stream, [events[i : i + batch] for i in range(0, events_each, batch)]))
        store = self.store

        async def writer(stream: StreamId, chunks: list[list[Event]]) -> None:
            version = 0
            for chunk in chunks:
                await store.append(stream, version, chunk)
                version += len(chunk)

        async def run() -> int:
            if writers == 1:
                await writer(*work[0])
            else:
                await asyncio.gather(*(writer(s, c) for s, c in work))
            return writers * events_each

        return run

    def _rows(self, count: int, jsonb: bool) -> list[RawRow]:
        events = item_events(new_stream(self.tenant_id), count)
        return raw_rows(events, jsonb=jsonb)

    def _raw_inserts(self, writers: int, events_each: int, jsonb: bool) -> Timed:
        rows = [self._rows(events_each, jsonb) for _ in range(writers)]
        pool = self.pool

        async def writer(mine: list[RawRow]) -> None:
            for row in mine:
                async with pool.connection() as conn:
                    await conn.execute(INSERT_RAW, row)

        async def run() -> int:
            if writers == 1:
                await writer(rows[0])
            else:
                await asyncio.gather(*(writer(r) for r in rows))
            return writers * events_each

        return run

    def _raw_copies(self, batches: int, size: int, jsonb: bool) -> Timed:
        rows = self._rows(batches * size, jsonb)
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        pool = self.pool

        async def run() -> int:
            for chunk in chunks:
                # One COPY statement in an autocommit connection: one transaction per batch.
                async with (
                    pool.connection() as conn,
                    conn.cursor() as cur,
                    cur.copy(COPY_RAW) as copy,
                ):
                    for row in chunk:
                        await copy.write_row(row)
            return len(rows)

        return run

    # -- rounds ---------------------------------------------------------------------------

    async def _rounds(self, title: str, sides: list[Callable[[], Timed]]) -> list[list[float]]:
        """Events/s of each side per round. Every round runs each side once, in an order
        rotated by one from the round before, after one untimed warm-up round."""
        rounds = self.plan.rounds
        task = self._task(title, rounds + 1)
        for side in sides:  # warm-up: pool connections, prepared statements, caches
            await _rate(side())
        self._advance(task)
        rates: list[list[float]] = [[] for _ in sides]
        order = list(range(len(sides)))
        for number in range(rounds):
            shift = number % len(order)
            for index in order[shift:] + order[:shift]:
                rates[index].append(await _rate(sides[index]()))
            self._advance(task)
        return rates

    async def _compare(
        self,
        title: str,
        intent: tuple[str, str, Callable[[], Timed]],
        baselines: list[tuple[str, str, Callable[[], Timed]]],
        min_ratio: float,
    ) -> Comparison:
        sides = [intent, *baselines]
        rates = await self._rounds(title, [make for _, _, make in sides])
        series = [
            Series(label, description, "events/s", per_round)
            for (label, description, _), per_round in zip(sides, rates, strict=True)
        ]
        return Comparison(
            intent=series[0], baseline=series[1], min_ratio=min_ratio, also=series[2:]
        )

    async def single_writer(self) -> Comparison:
        n = self.plan.single_events
        return await self._compare(
            "(a) 1 writer, 1 event/tx",
            (
                "PostgresEventStore.append",
                "PostgresEventStore.append(stream, v, [event]) as AggregateRepository.save "
                "calls it, of pre-built events validated by the domain before timing: "
                "versions 1..n of one fresh stream per round",
                lambda: self._intent_writers(1, n),
            ),
            [
                (
                    "INSERT, JSON pre-serialised",
                    f"single-row INSERT into {RAW_TABLE}, payload and metadata passed as JSON "
                    "text serialised before the timed loop; autocommit, one pooled connection "
                    "per statement",
                    lambda: self._raw_inserts(1, n, jsonb=False),
                ),
                (
                    "INSERT, psycopg Jsonb",
                    "the same INSERT with payload and metadata as Python dicts in psycopg's "
                    "Jsonb wrapper, serialised by the driver inside the timed loop",
                    lambda: self._raw_inserts(1, n, jsonb=True),
                ),
            ],
            TARGET_SINGLE,
        )

    async def concurrent_writers(self) -> Comparison:
        w, n = self.plan.writers, self.plan.concurrent_events
        return await self._compare(
            f"(b) {w} writers, 1 event/tx",
            (
                "PostgresEventStore.append",
                f"{w} asyncio tasks, each appending versions 1..n of its own fresh stream, "
                "one pre-built event per append",
                lambda: self._intent_writers(w, n),
            ),
            [
                (
                    "INSERT, JSON pre-serialised",
                    f"{w} asyncio tasks, each inserting its own rows into {RAW_TABLE}, one "
                    "row per statement, autocommit, JSON serialised before the timed loop",
                    lambda: self._raw_inserts(w, n, jsonb=False),
                ),
                (
                    "INSERT, psycopg Jsonb",
                    "the same with payload and metadata in psycopg's Jsonb wrapper, "
                    "serialised by the driver inside the timed loop",
                    lambda: self._raw_inserts(w, n, jsonb=True),
                ),
            ],
            TARGET_CONCURRENT,
        )

    async def batch_append(self) -> Comparison:
        b, size = self.plan.batches, self.plan.batch_size
        return await self._compare(
            f"(c) {size} events/tx",
            (
                f"PostgresEventStore.append x{size}",
                f"PostgresEventStore.append of {size} pre-built events at a time, successive "
                "versions of one fresh stream per round",
                lambda: self._intent_writers(1, b * size, batch=size),
            ),
            [
                (
                    f"COPY x{size}, JSON pre-serialised",
                    f"COPY {RAW_TABLE} FROM STDIN of {size} rows (psycopg cursor.copy, "
                    "write_row), one COPY statement per autocommit transaction, JSON "
                    "serialised before the timed loop",
                    lambda: self._raw_copies(b, size, jsonb=False),
                ),
                (
                    f"COPY x{size}, psycopg Jsonb",
                    "the same COPY with payload and metadata in psycopg's Jsonb wrapper, "
                    "serialised by the driver inside the timed loop",
                    lambda: self._raw_copies(b, size, jsonb=True),
                ),
            ],
            TARGET_BATCH,
        )

    async def aggregate_load(self) -> LoadResults:
        plan = self.plan
        results = LoadResults(lengths=plan.load_lengths)
        build = self._task("(d) building streams", sum(plan.load_lengths))
        streams: dict[int, StreamId] = {}
        for length in plan.load_lengths:
            streams[length] = await self._build_stream(length, build)
            results.snapshot_counts[length] = await self._snapshot_count(streams[length])
        cases = [(kind, length) for length in plan.load_lengths for kind in LOAD_KINDS]
        timings: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
        task = self._task("(d) aggregate loads", plan.load_rounds + 1)
        for case in cases:
            # Warm-up, a check that every way reads the same state, and how many loads make
            # one round's figure: enough for ~LOAD_ROUND_MS, so quick loads are not all noise.
            first = await self._load_once(case[0], streams[case[1]], case[1], results)
            repeat = int(LOAD_ROUND_MS / max(first, 0.01))
            results.loads_per_round[case] = max(1, min(LOAD_REPEAT_MAX, repeat))
        self._advance(task)
        for number in range(plan.load_rounds):
            shift = number % len(cases)
            for case in cases[shift:] + cases[:shift]:
                repeat = results.loads_per_round[case]
                gc.collect()
                total = 0.0
                for _ in range(repeat):
                    total += await self._load_once(case[0], streams[case[1]], case[1])
                timings[case].append(total / repeat)
            self._advance(task)
        for (kind, length), values in timings.items():
            results.series[kind][length] = Series(
                f"{kind} {length}", _load_description(kind, f"{length:,}"), "ms", values
            )
        return results

    async def _build_stream(self, length: int, task: TaskID | None) -> StreamId:
        stream = new_stream(self.tenant_id)
        events = item_events(stream, length)
        loaded: Loaded[ItemState] = Loaded(stream=stream, state=Item.initial_state(), version=0)
        step = self.plan.snapshot_every
        for start in range(0, length, step):
            batch = events[start : start + step]
            loaded, _ = await self.repo.save(Item, loaded, batch)
            self._advance(task, len(batch))
        return stream

    async def _snapshot_count(self, stream: StreamId) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "select count(*) from intent.snapshots where tenant_id = %s"
                " and aggregate_type = %s and aggregate_id = %s",
                (stream.tenant_id, stream.aggregate_type, stream.aggregate_id),
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def _load_once(
        self, kind: str, stream: StreamId, length: int, check: LoadResults | None = None
    ) -> float:
        """One load in milliseconds; with `check`, also what it read is verified."""
        target = length - 1 if kind == "snapshot_tail" else length
        if kind == "baseline":
            start = perf_counter()
            async with self.pool.connection() as conn:
                cur = await conn.execute(
                    SELECT_PAYLOADS,
                    (stream.tenant_id, stream.aggregate_type, stream.aggregate_id),
                )
                rows = await cur.fetchall()
            on_hand = 0
            for (payload,) in rows:
                on_hand += payload.get("quantity", 0)
            elapsed = perf_counter() - start
            version = len(rows)
        else:
            start = perf_counter()
            loaded = await self.repo.load(
                Item,
                stream,
                version=target if kind == "snapshot_tail" else None,
                use_snapshots=kind in SNAPSHOT_KINDS,
            )
            elapsed = perf_counter() - start
            on_hand, version = loaded.state.on_hand, loaded.version
        if check is not None:
            # Version 1 registers the item, every later one receives one unit.
            if (version, on_hand) != (target, target - 1):
                raise RuntimeError(
                    f"{kind} load of a {length}-event stream read version {version} with "
                    f"{on_hand} on hand; expected {target} and {target - 1}"
                )
            if kind in SNAPSHOT_KINDS:
                snapshot = await self.repo.snapshots.latest(stream, at_or_below=target)
                check.replayed[(kind, length)] = target - (snapshot.version if snapshot else 0)
        return elapsed * 1000

    # -- progress -------------------------------------------------------------------------

    def _task(self, title: str, total: int) -> TaskID | None:
        return self.progress.add_task(title, total=total) if self.progress else None

    def _advance(self, task: TaskID | None, steps: int = 1) -> None:
        if self.progress is not None and task is not None:
            self.progress.advance(task, steps)


def _load_description(kind: str, length: str) -> str:
    every = Item.snapshot_every
    if kind == "snapshots":
        return (
            f"AggregateRepository.load(Item) of a {length}-event stream: its snapshot at "
            f"version {length} (the repository snapshots every {every}), no events to replay"
        )
    if kind == "snapshot_tail":
        return (
            f"AggregateRepository.load(Item, version={length}-1) of the same stream: the "
            f"snapshot {every} events back plus {every - 1} events replayed, the most the "
            "snapshot policy ever leaves"
        )
    if kind == "no_snapshots":
        return (
            f"AggregateRepository.load(Item, use_snapshots=False) of a {length}-event stream "
            "(every event validated and folded)"
        )
    return f"select payload ... order by version + a Python sum, {length}-event stream"


async def _rate(work: Timed) -> float:
    """Events per second of one timed run."""
    gc.collect()
    start = perf_counter()
    events = await work()
    return events / (perf_counter() - start)


class BenchError(Exception):
    """The database cannot be benchmarked; the message says why and what to do."""


async def server_facts(url: str) -> dict[str, Any]:
    """PostgreSQL's version and settings, over a connection of its own: fails fast (and
    clearly) on a database that cannot be reached or has not been migrated."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=10, autocommit=True)
    except psycopg.OperationalError as exc:
        raise BenchError(f"cannot connect to the database: {str(exc).strip()}") from None
    async with conn:
        cur = await conn.execute("select to_regclass('intent.events') is not null")
        row = await cur.fetchone()
        if not row or not row[0]:
            raise BenchError(
                "the database has no intent.events table; migrate it first "
                "(intent db migrate --database-url URL)"
            )
        cur = await conn.execute(
            "select name, current_setting(name) from pg_settings where name = any(%s)"
            " order by name",
            (list(SETTINGS),),
        )
        settings = {name: value for name, value in await cur.fetchall()}
        cur = await conn.execute("show server_version")
        row = await cur.fetchone()
    return {"server_version": row[0] if row else None, "settings": settings}


async def create_raw_table(pool: AsyncConnectionPool[Conn]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"create schema if not exists {RAW_SCHEMA}")
        await conn.execute(f"drop table if exists {RAW_TABLE}")
        await conn.execute(f"create table {RAW_TABLE} (like intent.events including all)")


async def drop_raw_table(pool: AsyncConnectionPool[Conn]) -> None:
    async with pool.connection() as conn:
        await conn.execute(f"drop table if exists {RAW_TABLE}")
        cur = await conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = %s",
            (RAW_SCHEMA,),
        )
        row = await cur.fetchone()
        if row and row[0] == 0:
            await conn.execute(f"drop schema if exists {RAW_SCHEMA}")


async def run_append(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    """All four sections against the migrated database at `url`."""
    started = datetime.now(UTC)
    server = await server_facts(url)
    pool = await open_pool(url, min_size=plan.writers, max_size=plan.writers, name="bench")
    try:
        await create_raw_table(pool)
        try:
            bench = AppendBench(pool, plan, progress)
            single = await bench.single_writer()
            concurrent = await bench.concurrent_writers()
            batch = await bench.batch_append()
            load = await bench.aggregate_load()
        finally:
            await drop_raw_table(pool)
        server["tenant_id"] = str(bench.tenant_id)
    finally:
        await pool.close()
    return Results(
        plan=plan, single=single, concurrent=concurrent, batch=batch, load=load,
        server=server, started_at=started, finished_at=datetime.now(UTC),
    )


# -- the tables ---------------------------------------------------------------------------


def _spread(series: Series) -> str:
    return f"[dim]±{spread(series.per_round) * 100:.0f}%[/dim]"


def _rate_cell(series: Series) -> str:
    return f"{series.median:,.0f} {_spread(series)}"


def _ms_cell(series: Series) -> str:
    value = series.median
    text = f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"
    return f"{text} {_spread(series)}"


def throughput_table(results: Results) -> Table:
    table = Table(
        title=f"append throughput, events/s (median of {results.plan.rounds} rounds)",
        caption=(
            "ratio = median Intent / median raw (in brackets: the median of the per-round "
            "ratios); ± half the interquartile range over the rounds"
        ),
    )
    table.add_column("section")
    table.add_column("Intent", justify="right")
    table.add_column("raw, JSON pre-serialised", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("")
    table.add_column("raw, psycopg Jsonb", justify="right")
    table.add_column("ratio", justify="right")
    sections = (
        ("(a) 1 writer, 1 event/tx, INSERT", results.single),
        (f"(b) {results.plan.writers} writers, 1 event/tx, INSERT", results.concurrent),
        (f"(c) {results.plan.batch_size} events/tx vs COPY", results.batch),
    )
    for title, c in sections:
        other = c.also[0] if c.also else None
        table.add_row(
            title,
            _rate_cell(c.intent),
            _rate_cell(c.baseline),
            f"{c.ratio:.2f} [dim]({c.paired_ratio(c.baseline):.2f})[/dim]",
            f"≥ {c.min_ratio:.2f}",
            verdict(c.met),
            _rate_cell(other) if other else "",
            f"{c.ratio_to(other):.2f}" if other else "",
        )
    return table


def load_table(results: Results) -> Table:
    load = results.load
    short, long = min(load.lengths), max(load.lengths)
    every = Item.snapshot_every or 0
    table = Table(
        title=(
            f"aggregate load (inventory Item), ms (median of {results.plan.load_rounds} rounds)"
        ),
        caption=(
            f"snapshots every {every} events; '+{every - 1} tail': loaded as of version N-1, "
            f"so {every - 1} events are replayed after the snapshot; raw = select payload ... "
            "order by version + a Python sum"
        ),
    )
    table.add_column("stream")
    table.add_column("snapshots", justify="right")
    table.add_column(f"snapshot +{every - 1} tail", justify="right")
    table.add_column("no snapshots", justify="right")
    table.add_column("raw select+fold", justify="right")
    table.add_column("no snapshots / raw", justify="right")
    for length in load.lengths:
        table.add_row(
            f"{length:,} events",
            *(_ms_cell(load.series[kind][length]) for kind in LOAD_KINDS),
            f"{load.ratio_to_baseline('no_snapshots', length):.1f}x",
        )
    table.add_section()
    table.add_row(
        f"growth {long // 1000}k / {short // 1000}k",
        *(f"{load.growth(kind):.2f}" for kind in LOAD_KINDS),
        "",
    )
    table.add_row(
        "target", f"≤ {TARGET_LOAD_GROWTH:.2f}", f"≤ {TARGET_LOAD_GROWTH:.2f}", "", "", "",
    )
    table.add_row(
        "", *(verdict(load.growth(k) <= TARGET_LOAD_GROWTH) for k in SNAPSHOT_KINDS), "", "", "",
    )
    return table


def summary_lines(results: Results) -> list[str]:
    settings = results.server.get("settings", {})
    return [
        f"PostgreSQL {results.server.get('server_version')}: fsync={settings.get('fsync')}, "
        f"synchronous_commit={settings.get('synchronous_commit')}, "
        f"full_page_writes={settings.get('full_page_writes')}",
        "[green]all targets met[/green]"
        if results.all_met
        else "[red]some targets missed[/red] (see the tables)",
    ]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("append", now)


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


__all__ = [
    "FULL",
    "QUICK",
    "AppendBench",
    "BenchError",
    "Plan",
    "Results",
    "default_json_name",
    "dumps",
    "load_table",
    "run_append",
    "summary_lines",
    "throughput_table",
]
