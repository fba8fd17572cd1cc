"""`intent bench realtime`: from an event's commit to its delivery at N subscribers (what it
measures and how: `plan`'s docstring).

  plan     fan-outs, messages, rate (quick and full), the targets, the timeouts
  sockets  the subscribers' websockets (Phoenix protocol, as supabase-py speaks it)
  phases   one fan-out: joins, the Intent and baseline phases, the deliveries collected
  results  the figures per phase, the targets, the JSON
  report   the tables and summary lines
  relay    `intent relay` as a process of its own
  run      run_realtime: the gateway and the relay, then every fan-out
"""

from tools.bench.realtime.plan import FULL, QUICK, Plan
from tools.bench.realtime.report import (
    default_json_name,
    realtime_table,
    summary_lines,
    targets_table,
)
from tools.bench.realtime.results import Results
from tools.bench.realtime.run import run_realtime
from tools.bench.realtime.sockets import BenchRealtimeError

__all__ = [
    "FULL",
    "QUICK",
    "BenchRealtimeError",
    "Plan",
    "Results",
    "default_json_name",
    "realtime_table",
    "run_realtime",
    "summary_lines",
    "targets_table",
]
