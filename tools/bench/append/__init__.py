"""`intent bench append`: Intent's public append and load paths beside a RAW baseline, in six
workloads (what they are and how each is measured: `plan`'s docstring).

  account    the bench's own aggregate, registry and Application; events decided from
             Command envelopes
  plan       the workloads, their sizes (quick and full) and targets
  raw        the RAW table, its statements, rows and fold
  broadcast  broadcast as shipped (trigger, or a relay run for the whole bench) and the
             relay's drain
  writes     W1-W4: AggregateRepository.save beside INSERT and COPY
  loads      W5, W5p: AggregateRepository.load beside select + fold
  results    the figures and their JSON
  report     the tables and summary lines
  chart      the PNG of the ratios against their targets
  run        run_append: the whole run
"""

from tools.bench.append.chart import draw_chart
from tools.bench.append.plan import FULL, QUICK, Plan
from tools.bench.append.report import (
    default_json_name,
    latency_table,
    rounds_table,
    summary_lines,
    workloads_table,
)
from tools.bench.append.results import Results
from tools.bench.append.run import run_append

__all__ = [
    "FULL",
    "QUICK",
    "Plan",
    "Results",
    "default_json_name",
    "draw_chart",
    "latency_table",
    "rounds_table",
    "run_append",
    "summary_lines",
    "workloads_table",
]
