"""`intent bench append`: append throughput and aggregate load times, beside raw baselines
(what it measures and how: `plan`'s docstring).

  plan        the sections, their sizes (quick and full) and targets
  raw_table   the raw baselines' table
  throughput  sections (a)-(c): appends beside INSERT and COPY, in rotating rounds
  loads       section (d): aggregate loads beside select + fold
  results     the figures and their JSON
  report      the tables and summary lines
  run         run_append: the whole run
"""

from tools.bench.append.plan import FULL, QUICK, Plan
from tools.bench.append.report import (
    default_json_name,
    load_table,
    summary_lines,
    throughput_table,
)
from tools.bench.append.results import Results
from tools.bench.append.run import run_append

__all__ = [
    "FULL",
    "QUICK",
    "Plan",
    "Results",
    "default_json_name",
    "load_table",
    "run_append",
    "summary_lines",
    "throughput_table",
]
