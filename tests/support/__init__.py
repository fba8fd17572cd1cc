"""Helpers shared by the test suites, one module a concern. Fixtures stay in the conftest.py
files (pytest finds them there); what they and the tests call lives here:

- broadcast: the broadcast relay (until idle, in the loop, as a process) and its messages
  read back from the WAL, as Realtime reads them
- builders: envelopes (metadata, commands) and an in-memory stock item, for unit tests
- db: small readers and writers of the session's database
- dev: `intent dev` as a process, its ports, PIDs and a clean stop
- feed: the head of the feed and consumers' checkpoints
- gateway: the gateway with the fixture functions of tests/fixtures/functions
- http: headers, requests and supabase-py clients against the gateway
- ingress: the SQL ingress called as PostgREST calls it
- node: JavaScript under Node (the official JS clients, driven by a script)
- pipeline: enqueue commands, run pumps and batch workers, wait for outcomes
- processes: `intent ...` as a process, PIDs, a state folder others may enter
- projections: projections under fresh names, their tables, a small `shelves` projection
- realtime: one Agent protocol over supabase-py and supabase-js, and the gateway for it
- sagas: the fulfilment saga's stack in the test's loop, and an order's steps through it
- scenario: the people and tokens of the client scenarios
- streams: stored events for any stream and version, and appends
- telemetry: a span processor that notes starts, and metric points
- tenants: tenant ids, fresh tenants, request claims and tokens of every shape
- waiting: bounded polls (`until`)
"""
