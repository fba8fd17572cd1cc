"""The store side of saga instance records (intent.saga_instances): what a browser can see of
an instance that lives in Temporal. One idempotent upsert: a retried or replayed record
writes the same row again, an older record (a late retry) never overwrites a newer one, and
a completed instance never goes back to running."""

from __future__ import annotations

import json

from pump.sagas.contracts import InstanceRecord
from pump.store.connections import Conn

_UPSERT = """
insert into intent.saga_instances as s
  (workflow_id, tenant_id, saga, instance, status, outcome, started_at, updated_at,
   next_timer_at, timers, last_event_type)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
on conflict (workflow_id) do update set
  status = excluded.status,
  outcome = excluded.outcome,
  updated_at = excluded.updated_at,
  next_timer_at = excluded.next_timer_at,
  timers = excluded.timers,
  last_event_type = coalesce(excluded.last_event_type, s.last_event_type)
where s.status = 'running' and s.updated_at <= excluded.updated_at
"""


async def upsert_instance(conn: Conn, record: InstanceRecord) -> bool:
    """Write `record`; False when the row holds a newer record or the instance's end."""
    # A completed instance waits on nothing (the table's check says so too).
    timers = record.timers if record.status == "running" else {}
    cursor = await conn.execute(
        _UPSERT,
        (
            record.workflow_id, record.tenant_id, record.saga, record.instance,
            record.status, record.outcome, record.started_at, record.recorded_at,
            min(timers.values()) if timers else None,
            json.dumps({name: at.isoformat() for name, at in sorted(timers.items())}),
            record.last_event_type,
        ),
    )
    return cursor.rowcount == 1
