"""Benchmarks: each measures Intent beside a raw baseline run in the same process.

One package per benchmark (append, commands, projections, realtime) and one module
(fairness), each run by `intent bench <name>` (tools/cli/bench.py). What they share:

  stats     medians, percentiles, spread, Intent beside its baseline; the reports' pieces
  database  the benchmarked database: usable or not (BenchError), its version and settings
  cluster   a durable PostgreSQL cluster of the benchmark's own
  workload  inventory events, and the same facts as raw table rows
  callers   commands submitted as PostgREST would; waiting for them to be terminal
  pipeline  Temporal's dev server and the app's batch processor, in the benchmark's process
  progress  the progress bar's tasks
"""
