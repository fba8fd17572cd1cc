"""The local gateway: Supabase's URLs on one port, for development and tests only.

- app.py: `create_app`, composing the modules below; config.py: `GatewayConfig`
- shared.py: what the modules share (the `Gateway`, app keys, the log line)
- auth.py, session.py, errors.py, limits.py: callers, their transactions, error shapes,
  input limits
- postgrest/: `/rest/v1`; realtime/: `/realtime/v1`; functions.py (and
  function_processes.py): `/functions/v1`
- testing.py: the gateway as its own process (`intent gateway`, tools/cli/gateway.py),
  for tests
"""
