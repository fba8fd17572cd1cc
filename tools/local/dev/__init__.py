"""`intent dev`: the whole local stack in one foreground command.

`stack` holds the pure plan (which processes, in which order, how each shows it is healthy,
the restart policy, the port checks); `database` brings up the embedded PostgreSQL and keeps
it up (restarting one dev started, waiting for one it found); `supervisor` starts, watches,
restarts and stops the child processes; `record` is dev.json, what runs and in what state.
"""
