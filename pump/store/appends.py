"""The append statements and how their parameters are encoded: one round trip per append,
a snapshot that falls due written by the same statement.

Statements use PostgreSQL's own $n placeholders and run through a raw cursor, so psycopg
sends them as they are instead of rewriting placeholders on every call (measurably less
CPU on the hottest path). Parameters: $1 tenant, $2 aggregate type, $3 aggregate id,
$4 expected version, then the event(s), then the snapshot's version, schema version and
state when one is written.

The head check: the expected version must exist (or be 0). A head that is further on is
caught by the unique stream-version constraint instead, so one index probe decides both.

JSON is encoded by pydantic-core (Rust) in one pass per statement: several times faster
than `json.dumps` of each payload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_json

from domain.contracts import Event, Snapshot, StreamId
from domain.errors import BadInput


class InvalidAppend(BadInput):
    code = "invalid_append"


_INSERT = """
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, schema_version, payload, metadata)"""
_HEAD_IS_EXPECTED = """
where $4 = 0 or exists (
  select from intent.events
  where tenant_id = $1 and aggregate_type = $2 and aggregate_id = $3 and version = $4)"""
# One event (the usual case: one command, one event) as plain parameters: measurably
# cheaper than decoding a one-element JSON array.
_ONE = _INSERT + """
select $5, $1, $2, $3, $4 + 1, $6, $7, $8::jsonb, $9::jsonb""" + _HEAD_IS_EXPECTED
# The first event of a new stream: nothing to check the head against (a stream that exists
# after all is refused by the unique stream-version constraint), so plain VALUES, which the
# server plans and runs a little faster than INSERT ... SELECT ... WHERE.
_FIRST = _INSERT + """
values ($5, $1, $2, $3, $4 + 1, $6, $7, $8::jsonb, $9::jsonb)"""
_MANY = _INSERT + """
select e.event_id, $1, $2, $3, $4 + e.n, e.event_type, e.schema_version, e.payload, e.metadata
from rows from (jsonb_to_recordset($5::jsonb) as (
       event_id uuid, event_type text, schema_version int, payload jsonb, metadata jsonb)
     ) with ordinality as e(event_id, event_type, schema_version, payload, metadata, n)""" + (
    _HEAD_IS_EXPECTED
)
_RETURNING = "\nreturning position, transaction_id::text::bigint"


def _with_snapshot(insert: str, first: int) -> str:
    """`insert` and the snapshot of the state it leads to, in one statement: the snapshot
    row is written only when the events were (same first-one-kept rule as
    PostgresSnapshotStore.save), and the two commit or fail together."""
    return f"""
with appended as ({insert}
  returning position, transaction_id
), snapshot as (
  insert into intent.snapshots (tenant_id, aggregate_type, aggregate_id, version,
                                schema_version, state)
  select $1, $2, $3, ${first}, ${first + 1}, ${first + 2}::jsonb
  where exists (select from appended)
  on conflict (tenant_id, aggregate_type, aggregate_id, version) do nothing
)
select position, transaction_id::text::bigint from appended order by position"""


APPEND_ONE = (_ONE + _RETURNING).encode()
APPEND_FIRST = (_FIRST + _RETURNING).encode()
APPEND_MANY = (_MANY + _RETURNING).encode()
APPEND_ONE_SNAPSHOT = _with_snapshot(_ONE, 10).encode()
APPEND_MANY_SNAPSHOT = _with_snapshot(_MANY, 6).encode()

# Several streams in one statement: each stream's events follow its expected version, and
# nothing at all is inserted unless every stream's head is where its caller expects it (a
# head further on is refused by the unique stream-version constraint, as for one stream).
# $1: [{tenant_id, aggregate_type, aggregate_id, expected, events: [...]}, ...].
APPEND_STREAMS = b"""
with s as (
  select s.tenant_id, s.aggregate_type, s.aggregate_id, s.expected, s.events, s.ord
  from rows from (jsonb_to_recordset($1::jsonb) as (
         tenant_id uuid, aggregate_type text, aggregate_id uuid, expected int, events jsonb)
       ) with ordinality as s(tenant_id, aggregate_type, aggregate_id, expected, events, ord)
), behind as (
  select from s
  where s.expected <> 0 and not exists (
    select from intent.events h
    where h.tenant_id = s.tenant_id and h.aggregate_type = s.aggregate_type
      and h.aggregate_id = s.aggregate_id and h.version = s.expected)
)
insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id, version,
                           event_type, schema_version, payload, metadata)
select e.event_id, s.tenant_id, s.aggregate_type, s.aggregate_id, s.expected + e.n,
       e.event_type, e.schema_version, e.payload, e.metadata
from s cross join lateral rows from (jsonb_to_recordset(s.events) as (
       event_id uuid, event_type text, schema_version int, payload jsonb, metadata jsonb)
     ) with ordinality as e(event_id, event_type, schema_version, payload, metadata, n)
where not exists (select from behind)
order by s.ord, e.n
returning position, transaction_id::text::bigint, tenant_id, aggregate_type, aggregate_id
"""

# Serialised by pydantic's core in one pass: several times faster than dumping each
# envelope's metadata to a dict and the whole list through json.dumps.
_EVENT_LIST = TypeAdapter(list[Event])
_APPEND_FIELDS = {"__all__": {"event_id", "event_type", "schema_version", "payload", "metadata"}}


def _json(value: object) -> str:
    try:
        return to_json(value).decode()
    except PydanticSerializationError as exc:
        raise InvalidAppend(f"an event payload is not plain JSON: {exc}") from None


def events_json(events: Sequence[Event]) -> str:
    try:
        return _EVENT_LIST.dump_json(list(events), include=_APPEND_FIELDS).decode()
    except PydanticSerializationError as exc:
        raise InvalidAppend(f"an event payload is not plain JSON: {exc}") from None


def append_statement(
    stream: StreamId, expected: int, events: Sequence[Event], snapshot: Snapshot | None
) -> tuple[bytes, tuple[object, ...]]:
    """The statement appending `events` after `expected` (and writing `snapshot`), with its
    parameters encoded."""
    head: tuple[object, ...] = (
        stream.tenant_id, stream.aggregate_type, stream.aggregate_id, expected
    )
    if len(events) == 1:
        event = events[0]
        if snapshot is not None:
            sql = APPEND_ONE_SNAPSHOT
        else:
            sql = APPEND_FIRST if expected == 0 else APPEND_ONE
        params: tuple[object, ...] = (
            *head, event.event_id, event.event_type, event.schema_version,
            _json(event.payload), event.metadata.model_dump_json(),
        )
    else:
        sql = APPEND_MANY if snapshot is None else APPEND_MANY_SNAPSHOT
        params = (*head, events_json(events))
    if snapshot is not None:
        params = (*params, snapshot.version, snapshot.schema_version, _json(snapshot.state))
    return sql, params


def streams_json(work: Sequence[tuple[StreamId, int, Sequence[Event]]]) -> str:
    """APPEND_STREAMS' one parameter."""
    return "[" + ",".join(
        f'{{"tenant_id":"{stream.tenant_id}",'
        f'"aggregate_type":{json.dumps(stream.aggregate_type)},'
        f'"aggregate_id":"{stream.aggregate_id}","expected":{expected},'
        f'"events":{events_json(events)}}}'
        for stream, expected, events in work
    ) + "]"
