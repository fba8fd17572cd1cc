"""`intent bench commands`: the whole command path, through Temporal beside direct mode
(what it measures and how: `plan`'s docstring).

  plan          the loads, their sizes (quick and full), the sides and the targets
  setup         pools, the Temporal dev server and workers, client processes, the pumps
  loads         throughput, backlog drain and low load on one side; the rounds
  function_hop  the edge function's hop beside the RPC, through the local gateway
  results       the figures per side, the targets, the JSON
  report        the tables and summary lines
  run           run_commands: the whole run
"""

from tools.bench.commands.plan import FULL, QUICK, Plan
from tools.bench.commands.report import (
    commands_table,
    default_json_name,
    summary_lines,
    targets_table,
)
from tools.bench.commands.results import Results
from tools.bench.commands.run import run_commands

__all__ = [
    "FULL",
    "QUICK",
    "Plan",
    "Results",
    "commands_table",
    "default_json_name",
    "run_commands",
    "summary_lines",
    "targets_table",
]
