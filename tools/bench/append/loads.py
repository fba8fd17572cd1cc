"""W5 and W5p of `intent bench append`: `AggregateRepository.load` beside the RAW select and
fold of the same facts.

Built first (untimed), on both sides: a stream of `tail_length` events (10,050), saved in
appends of 100 so the repository snapshots every 100 and the last snapshot is at 10,000,
then the 50-event tail; and a stream of `replay_length` events (10,000). The RAW table gets
the same events' rows, one COPY per stream.

  W5   `load(Account, stream)`: the snapshot at 10,000 plus the 50 events after it; target
       an absolute time. For reference only, RAW's select + fold of the same 50 events.
  W5p  `load(Account, stream, use_snapshots=False)`: every event read, upcast, validated and
       folded; beside RAW's select of the 10,000 rows and the fold. Ratio: RAW ms / Intent ms.

Each round loads each side `loads` times back to back (the side first alternating); a
round's figure is the mean time per load, and every load's time goes into the latencies."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from rich.progress import Progress

from domain.contracts import StreamId
from domain.decider import Loaded
from pump.store.aggregates import AggregateRepository
from pump.store.connections import Conn
from tools.bench.append.account import SNAPSHOT_EVERY, Account, AccountState, decided, new_account
from tools.bench.append.plan import W5_TARGET, W5P_TARGET, Plan, Target
from tools.bench.append.raw import (
    RAW_TABLE,
    SELECT_RAW,
    SELECT_RAW_TAIL,
    RawRow,
    copy_rows,
    fold,
    raw_rows,
)
from tools.bench.append.results import Latencies, Workload
from tools.bench.progress import add_task, advance
from tools.bench.stats import Series

Expected = tuple[int, int, int]  # version, balance, deposits
Load = Callable[[], Awaitable[Expected]]  # one load, returning what it read


@dataclass(frozen=True)
class Built:
    """A stream on both sides, and what loading it must give."""

    stream: StreamId
    expected: Expected  # the whole stream
    tail_expected: Expected  # the events after the last snapshot, folded from zero
    snapshot_version: int

    @property
    def raw_id(self) -> str:
        return str(self.stream.aggregate_id)


class Loads:
    def __init__(
        self, pool: AsyncConnectionPool[Conn], repo: AggregateRepository, plan: Plan,
        tenant_id: UUID, progress: Progress | None = None,
    ):
        self.pool = pool
        self.repo = repo
        self.plan = plan
        self.tenant_id = tenant_id
        self.progress = progress

    async def build(self, length: int) -> Built:
        """A stream of `length` events through `save` (appends of up to SNAPSHOT_EVERY,
        each ending on a multiple of it while it can), and the same rows by COPY."""
        task = add_task(self.progress, f"building a {length:,}-event stream", length)
        loaded: Loaded[AccountState] = new_account(self.tenant_id)
        rows: list[RawRow] = []
        tail: list[tuple[int, dict[str, Any]]] = []
        while loaded.version < length:
            size = min(SNAPSHOT_EVERY, length - loaded.version)
            events, _ = decided(loaded, size)
            loaded, _ = await self.repo.save(Account, loaded, events)
            rows += raw_rows(events)
            tail = [(e.version, e.payload) for e in events] if size < SNAPSHOT_EVERY else []
            advance(self.progress, task, size)
        async with self.pool.connection() as conn:
            await copy_rows(conn, rows)
        snapshot = await self.repo.snapshots.latest(loaded.stream)
        state = loaded.state
        return Built(
            stream=loaded.stream, expected=(loaded.version, state.balance, state.deposits),
            tail_expected=fold(tail), snapshot_version=snapshot.version if snapshot else 0,
        )

    def _intent_load(self, built: Built, use_snapshots: bool) -> Load:
        async def load() -> Expected:
            loaded = await self.repo.load(Account, built.stream, use_snapshots=use_snapshots)
            return loaded.version, loaded.state.balance, loaded.state.deposits

        return load

    def _raw_load(self, built: Built, after: int | None) -> Load:
        async def load() -> Expected:
            async with self.pool.connection() as conn:
                if after is None:
                    cur = await conn.execute(SELECT_RAW, (built.raw_id,), prepare=True)
                else:
                    cur = await conn.execute(SELECT_RAW_TAIL, (built.raw_id, after),
                                             prepare=True)
                rows = await cur.fetchall()
            return fold(rows)

        return load

    async def tail(self, built: Built) -> Workload:
        """W5: the snapshot plus the tail, beside RAW's select + fold of the tail."""
        intent = self._intent_load(built, use_snapshots=True)
        raw = self._raw_load(built, after=built.snapshot_version)
        tail = built.expected[0] - built.snapshot_version
        return await self._measure(
            "W5", f"load {built.expected[0]:,}: snapshot + {tail} events",
            (intent, built.expected), (raw, built.tail_expected), self.plan.w5_loads,
            W5_TARGET, _w5_what(built),
            {"stream_length": built.expected[0], "snapshot_version": built.snapshot_version,
             "tail_events": tail, "loads_per_side_per_round": self.plan.w5_loads},
        )

    async def replay(self, built: Built) -> Workload:
        """W5p: a full replay without snapshots, beside RAW's select + fold of every row."""
        intent = self._intent_load(built, use_snapshots=False)
        raw = self._raw_load(built, after=None)
        return await self._measure(
            "W5p", f"full replay of {built.expected[0]:,}",
            (intent, built.expected), (raw, built.expected), self.plan.w5p_loads,
            W5P_TARGET, _w5p_what(built),
            {"stream_length": built.expected[0],
             "loads_per_side_per_round": self.plan.w5p_loads},
        )

    async def _measure(
        self, key: str, title: str, intent: tuple[Load, Expected], raw: tuple[Load, Expected],
        loads: int, target: Target, what: str, sizes: dict[str, int],
    ) -> Workload:
        task = add_task(self.progress, f"{key} {title}", self.plan.rounds + 1)
        for side, (load, expected) in (("Intent", intent), ("RAW", raw)):
            found = await load()  # warm-up, and a check that it reads what was written
            if found != expected:
                raise RuntimeError(f"{key}: the {side} load read {found}, not {expected}")
        advance(self.progress, task)
        means: dict[str, list[float]] = {"intent": [], "raw": []}
        latency = {"intent": Latencies(), "raw": Latencies()}
        for number in range(self.plan.rounds):
            order = ("intent", "raw") if number % 2 == 0 else ("raw", "intent")
            for side in order:
                load = intent[0] if side == "intent" else raw[0]
                times = await _timed_loads(load, loads)
                means[side].append(sum(times) / len(times))
                latency[side].samples += times
            advance(self.progress, task)
        return Workload(
            key=key, title=title, what=what, unit="ms",
            intent=Series("Intent", "AggregateRepository.load", "ms", means["intent"]),
            raw=Series("RAW", "select + fold", "ms", means["raw"]),
            ratios=[r / i for i, r in zip(means["intent"], means["raw"], strict=True)],
            ratio_is="RAW ms / Intent ms, per round (mean time per load)",
            target=target, latency=latency, drains=None, sizes=sizes,
        )


async def _timed_loads(load: Load, count: int) -> list[float]:
    """`count` loads back to back, each one's time in ms."""
    gc.collect()
    times: list[float] = []
    for _ in range(count):
        began = perf_counter()
        await load()
        times.append((perf_counter() - began) * 1000)
    return times


def _w5_what(built: Built) -> str:
    tail = built.expected[0] - built.snapshot_version
    return (
        f"Intent: AggregateRepository.load(Account, stream) of a {built.expected[0]:,}-event "
        f"stream whose newest snapshot is at version {built.snapshot_version:,}: the "
        f"snapshot, then the {tail} events after it read, upcast, validated and folded. "
        f"Target: at most {W5_TARGET.value:g} ms (Intent's median of the rounds' mean "
        f"times). RAW, for reference: select version, payload from {RAW_TABLE} where "
        "stream_id = %s and version > <snapshot version> order by version, prepared, and "
        f"the fold of those {tail} rows from zero."
    )


def _w5p_what(built: Built) -> str:
    return (
        f"Intent: AggregateRepository.load(Account, stream, use_snapshots=False) of a "
        f"{built.expected[0]:,}-event stream: every event read, upcast, validated and "
        f"folded. RAW: select version, payload from {RAW_TABLE} where stream_id = %s order "
        "by version (prepared), then a Python loop adding each payload's amount to the "
        "balance and counting deposits (the aggregate's evolve, on dicts)."
    )
