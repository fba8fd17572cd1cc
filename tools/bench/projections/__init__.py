"""`intent bench projections`: how fast a projection is rebuilt from the feed, beside a COPY
of the rows it ends up with (what it measures and how: `plan`'s docstring).

  plan     the workload, its sizes (quick and full) and the targets
  sides    setup, the rebuild (SQL or Python path), the runner's catch-up, the COPY
  results  the figures and their JSON
  report   the table and summary lines
  run      run_projections: the whole run
"""

from tools.bench.projections.plan import FULL, QUICK, Plan
from tools.bench.projections.report import default_json_name, projections_table, summary_lines
from tools.bench.projections.results import Results
from tools.bench.projections.run import run_projections

__all__ = [
    "FULL",
    "QUICK",
    "Plan",
    "Results",
    "default_json_name",
    "projections_table",
    "run_projections",
    "summary_lines",
]
