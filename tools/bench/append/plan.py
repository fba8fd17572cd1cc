"""`intent bench append`: Intent's public append and load paths beside a RAW baseline.

One PostgreSQL cluster, fsync and synchronous_commit on, one psycopg pool of 8 autocommit
connections (pump.store.connections.open_pool) for both sides; broadcast on as shipped (the
trigger, or the relay when the database has it: `broadcast`).

Intent: the bench's own aggregate (`account`: deposits, snapshot every 100), its events made
by `domain.decider.decide` from `Command` envelopes before timing; timed are
`AggregateRepository.save(Account, loaded, events)` and `AggregateRepository.load(...)`.

RAW: `bench_raw.events(id uuid primary key, stream_id text, version int, type text,
payload jsonb, metadata jsonb, recorded_at timestamptz default now(),
unique (stream_id, version))`; an append is one prepared autocommit INSERT (payload and
metadata JSON text serialised before timing: the same facts as Intent's events), a batch one
COPY of its rows (one transaction), a load `select version, payload ... where stream_id = %s
order by version` plus a Python loop doing the aggregate's arithmetic on the dicts.

  W1   1 writer, 1 event per transaction, a new stream each     vs 1 INSERT each     >= 0.85
  W2   1 writer, 500 appends to one stream, expected version    vs INSERTs v1..500   >= 0.85
  W3   8 writers (asyncio tasks), 1 event per tx, new streams   vs 8 INSERT writers  >= 0.85
  W4   100 events per transaction                                vs COPY of 100 rows  >= 0.70
  W5   load of 10,050 events, snapshot at 10,000 (50-event tail) <= 1 ms (RAW: the tail)
  W5p  full replay of 10,000 events (no snapshots)               vs select + fold     >= 0.70

Every round runs Intent and RAW back to back, the order alternating from round to round;
the ratio is taken per round (W1-W4: Intent events/s / RAW events/s; W5, W5p: RAW ms /
Intent ms) and the figures are medians over the rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from tools.bench.append.account import SNAPSHOT_EVERY

TARGET_W1 = 0.85
TARGET_W2 = 0.85
TARGET_W3 = 0.85
TARGET_W4 = 0.70
TARGET_W5_MS = 1.0
TARGET_W5P = 0.70

TargetKind = Literal["min_ratio", "max_ms"]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: float

    @property
    def text(self) -> str:
        return f"≥ {self.value:.2f}" if self.kind == "min_ratio" else f"≤ {self.value:g} ms"

    def as_json(self) -> dict[str, Any]:
        return {self.kind: self.value}


@dataclass(frozen=True)
class WriteSpec:
    """One of W1-W4: who writes what, per side and round."""

    key: str
    title: str
    writers: int
    appends: int  # per writer per round
    batch: int  # events per append (rows per statement on the RAW side)
    one_stream: bool  # each writer's appends continue one stream (else a new stream each)
    target: Target

    @property
    def events(self) -> int:
        """Events written per side per round."""
        return self.writers * self.appends * self.batch


@dataclass(frozen=True)
class Plan:
    """How much work: rounds, and each workload's size."""

    name: str
    rounds: int
    w1_appends: int
    w2_appends: int
    writers: int  # W3's writers, and the pool's size
    w3_appends: int  # per writer
    batch_size: int  # W4: events per append / rows per COPY
    w4_batches: int
    tail_length: int  # W5: events in the stream (its last snapshot SNAPSHOT_EVERY-aligned)
    w5_loads: int  # W5: loads per side per round
    replay_length: int  # W5p: events replayed
    w5p_loads: int  # W5p: loads per side per round

    def write_specs(self) -> list[WriteSpec]:
        return [
            WriteSpec("W1", "1 writer, 1 event/tx, new streams", 1, self.w1_appends, 1,
                      False, Target("min_ratio", TARGET_W1)),
            WriteSpec("W2", f"1 writer, {self.w2_appends} appends to 1 stream", 1,
                      self.w2_appends, 1, True, Target("min_ratio", TARGET_W2)),
            WriteSpec("W3", f"{self.writers} writers, 1 event/tx, new streams",
                      self.writers, self.w3_appends, 1, False, Target("min_ratio", TARGET_W3)),
            WriteSpec("W4", f"{self.batch_size} events/tx", 1, self.w4_batches,
                      self.batch_size, True, Target("min_ratio", TARGET_W4)),
        ]

    @property
    def tail(self) -> int:
        """W5: the events after the stream's last snapshot."""
        return self.tail_length % SNAPSHOT_EVERY

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "w1_appends_per_round": self.w1_appends,
            "w2_appends_per_round": self.w2_appends,
            "w3_writers": self.writers,
            "w3_appends_per_writer_per_round": self.w3_appends,
            "w4_events_per_transaction": self.batch_size,
            "w4_transactions_per_round": self.w4_batches,
            "w5_stream_length": self.tail_length,
            "w5_tail_after_snapshot": self.tail,
            "w5_loads_per_side_per_round": self.w5_loads,
            "w5p_stream_length": self.replay_length,
            "w5p_loads_per_side_per_round": self.w5p_loads,
            "pool_size": self.writers,
            "snapshot_every": SNAPSHOT_EVERY,
        }


FULL = Plan(
    name="full", rounds=9, w1_appends=1_000, w2_appends=500, writers=8, w3_appends=250,
    batch_size=100, w4_batches=50, tail_length=10_050, w5_loads=300, replay_length=10_000,
    w5p_loads=3,
)
QUICK = Plan(
    name="quick", rounds=2, w1_appends=40, w2_appends=100, writers=8, w3_appends=10,
    batch_size=100, w4_batches=4, tail_length=10_050, w5_loads=10, replay_length=10_000,
    w5p_loads=1,
)
W5_TARGET = Target("max_ms", TARGET_W5_MS)
W5P_TARGET = Target("min_ratio", TARGET_W5P)
