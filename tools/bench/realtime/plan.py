"""`intent bench realtime`: from an event's commit to its delivery at N subscribers.

Setup: the local gateway and the broadcast relay, each as its own process (as `intent
gateway` and `intent relay` run them) on the benchmark's database; N websockets (vsn 1.0.0,
as supabase-py speaks it), each signed in as a user of one fresh tenant and joined to two
channels: the tenant's private topic `intent:tenant:<tenant>` (what the relay broadcasts
into) and a public topic for the baseline.

Per fan-out N, two phases of E messages at a fixed rate, in alternating order:
- Intent: one event appended per transaction (`PostgresEventStore.append`, a fresh item
  stream each); the clock starts when the append's COMMIT has returned. The event goes
  relay (polling every 50 ms when idle) -> realtime.messages -> WAL (wal2json) -> the
  gateway -> every subscriber.
- Baseline (fan-out only): one more socket sends a `broadcast` on the public topic, stamped
  just before it is sent; the gateway relays it to the N subscribers. The same sockets and
  the same relay, without the database path.

Latency = receive time - start time, per (message, subscriber), on one clock (one process).
The subscribers run in the benchmark's own event loop, so at large N the client's own
receive work is part of the figure. A phase ends when every subscriber has every message
or a few seconds after the last one was sent; a missing delivery is counted, never waited
for without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The JSON's `method`: this module's docstring.
METHOD = __doc__

TARGET_P50_MS = 100.0
TARGET_P99_MS = 300.0
TARGET_FANOUT = 100
# How long a phase waits for late deliveries after its last message.
SETTLE_SECONDS = 5.0
JOIN_SECONDS = 60.0
BASELINE_TOPIC = "bench-fanout"
JOIN_BATCH = 20  # subscribers joining at once
HEARTBEAT_SECONDS = 20.0  # realtime-js sends one every 25 s


@dataclass(frozen=True)
class Plan:
    name: str
    fanouts: tuple[int, ...]
    messages: int  # per phase
    rate: float  # messages per second

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "fanouts": list(self.fanouts), "messages": self.messages,
                "rate_per_s": self.rate}


FULL = Plan("full", fanouts=(1, 100, 1000), messages=200, rate=20.0)
QUICK = Plan("quick", fanouts=(1, 10), messages=20, rate=20.0)
