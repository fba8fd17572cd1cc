"""`/realtime/v1`: Supabase Realtime's Phoenix channels, as the current clients speak them.

- routes.py: the websocket endpoint, the HTTP broadcast API, `RealtimeModule`
- connection.py: one websocket, its channels and its bounded outbound queue (a slow
  consumer is dropped with close code 1013 instead of being buffered without bound)
- dispatch.py: what each client message does (join, leave, broadcast, presence, ...)
- service.py: what the connections share (hub, change feed) and the database checks
- hub.py: who is subscribed and present where; filters.py: Postgres Changes bindings
- wal.py: the change feed (logical decoding); arrays.py: array columns as JSON arrays
- frames.py: the wire format; payloads.py: what a broadcast or a change looks like on it
"""
