"""Section (d) of `intent bench append`: `AggregateRepository.load` of an inventory item
whose stream holds each of the plan's lengths, with snapshots and without, beside a select
of the payloads and a sum in Python."""

from __future__ import annotations

import gc
from time import perf_counter
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress, TaskID

from domain.contracts import StreamId
from domain.decider import Loaded
from domain.inventory import Item, ItemState
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from tools.bench.append.plan import (
    LOAD_KINDS,
    LOAD_REPEAT_MAX,
    LOAD_ROUND_MS,
    SNAPSHOT_KINDS,
    Plan,
    load_description,
)
from tools.bench.append.results import LoadResults
from tools.bench.progress import add_task, advance
from tools.bench.stats import Series
from tools.bench.workload import item_events, new_stream

SELECT_PAYLOADS = (
    "select payload from intent.events where tenant_id = %s and aggregate_type = %s"
    " and aggregate_id = %s order by version"
)

Case = tuple[str, int]  # a way of loading, a stream length


class AggregateLoads:
    """Streams of the plan's lengths built under `tenant_id`, then loaded every way."""

    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        repo: AggregateRepository,
        plan: Plan,
        tenant_id: UUID,
        progress: Progress | None = None,
    ):
        self.pool = pool
        self.repo = repo
        self.plan = plan
        self.tenant_id = tenant_id
        self.progress = progress

    async def aggregate_load(self) -> LoadResults:
        plan = self.plan
        results = LoadResults(lengths=plan.load_lengths)
        build = add_task(self.progress, "(d) building streams", sum(plan.load_lengths))
        streams: dict[int, StreamId] = {}
        for length in plan.load_lengths:
            streams[length] = await self._build_stream(length, build)
            results.snapshot_counts[length] = await self._snapshot_count(streams[length])
        cases = [(kind, length) for length in plan.load_lengths for kind in LOAD_KINDS]
        task = add_task(self.progress, "(d) aggregate loads", plan.load_rounds + 1)
        for case in cases:
            # Warm-up, a check that every way reads the same state, and how many loads make
            # one round's figure: enough for ~LOAD_ROUND_MS, so quick loads are not all noise.
            first = await self._load_once(case[0], streams[case[1]], case[1], results)
            repeat = int(LOAD_ROUND_MS / max(first, 0.01))
            results.loads_per_round[case] = max(1, min(LOAD_REPEAT_MAX, repeat))
        advance(self.progress, task)
        timings = await self._timed_rounds(cases, streams, results.loads_per_round, task)
        for (kind, length), values in timings.items():
            results.series[kind][length] = Series(
                f"{kind} {length}", load_description(kind, f"{length:,}"), "ms", values
            )
        return results

    async def _timed_rounds(
        self, cases: list[Case], streams: dict[int, StreamId], repeats: dict[Case, int],
        task: TaskID | None,
    ) -> dict[Case, list[float]]:
        """Each case's mean load time per round, the cases' order rotated every round."""
        timings: dict[Case, list[float]] = {case: [] for case in cases}
        for number in range(self.plan.load_rounds):
            shift = number % len(cases)
            for case in cases[shift:] + cases[:shift]:
                repeat = repeats[case]
                gc.collect()
                total = 0.0
                for _ in range(repeat):
                    total += await self._load_once(case[0], streams[case[1]], case[1])
                timings[case].append(total / repeat)
            advance(self.progress, task)
        return timings

    async def _build_stream(self, length: int, task: TaskID | None) -> StreamId:
        stream = new_stream(self.tenant_id)
        events = item_events(stream, length)
        loaded: Loaded[ItemState] = Loaded(stream=stream, state=Item.initial_state(), version=0)
        step = self.plan.snapshot_every
        for start in range(0, length, step):
            batch = events[start : start + step]
            loaded, _ = await self.repo.save(Item, loaded, batch)
            advance(self.progress, task, len(batch))
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
            await self._check(kind, stream, length, target, (version, on_hand), check)
        return elapsed * 1000

    async def _check(
        self, kind: str, stream: StreamId, length: int, target: int,
        read: tuple[int, int], results: LoadResults,
    ) -> None:
        """What a load read (version, on hand) is what the stream holds; for a snapshot
        load, how many events it replayed after the snapshot."""
        version, on_hand = read
        # Version 1 registers the item, every later one receives one unit.
        if (version, on_hand) != (target, target - 1):
            raise RuntimeError(
                f"{kind} load of a {length}-event stream read version {version} with "
                f"{on_hand} on hand; expected {target} and {target - 1}"
            )
        if kind in SNAPSHOT_KINDS:
            snapshot = await self.repo.snapshots.latest(stream, at_or_below=target)
            results.replayed[(kind, length)] = target - (snapshot.version if snapshot else 0)
