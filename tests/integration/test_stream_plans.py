"""The plans of a stream's reads and the append's checks do not depend on statistics: on a
copy of intent.events that was never analyzed (a temporary table, which autovacuum never
visits), with a 10,000-event stream in it, each of them is one probe of the stream index
(aggregate_type, aggregate_id, tenant_id, version) that removes no row by a filter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest

pytestmark = pytest.mark.integration

STREAM_EVENTS = 10_000
TYPE = "inventory.item"

# The predicates of the store's statements (pump/store/events.py) and of the ingress's tenant
# check (public.submit_command), on the probe table.
LOAD_AFTER = """
select event_id, version, payload from events_probe
where tenant_id = %(tenant)s and aggregate_type = %(type)s and aggregate_id = %(id)s
  and version > %(after)s and version <= coalesce(%(upto)s, 2147483647)
  and (%(as_of)s::timestamptz is null or recorded_at <= %(as_of)s::timestamptz)
order by version"""
# The aggregate fold's page (pump/store/replay.py): the events after a snapshot, in order.
LOAD_PAGE = """
select e.version, e.payload::text from events_probe e
where e.tenant_id = %(tenant)s and e.aggregate_type = %(type)s and e.aggregate_id = %(id)s
  and e.version > %(after)s and e.version <= 2147483647
order by e.version
limit 8192"""
HEAD_IS_EXPECTED = """
select exists (select from events_probe
  where tenant_id = %(tenant)s and aggregate_type = %(type)s and aggregate_id = %(id)s
    and version = %(after)s)"""
HEAD = """
select coalesce(max(version), 0) from events_probe
where tenant_id = %(tenant)s and aggregate_type = %(type)s and aggregate_id = %(id)s"""
OTHER_TENANT = """
select exists (select from events_probe e
                where e.aggregate_type = %(type)s and e.aggregate_id = %(id)s
                  and e.tenant_id < %(tenant)s)
    or exists (select from events_probe e
                where e.aggregate_type = %(type)s and e.aggregate_id = %(id)s
                  and e.tenant_id > %(tenant)s)"""


@pytest.fixture
def probe(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    """A never-analyzed copy of intent.events holding one long stream and some others."""
    tenant, item = uuid4(), uuid4()
    conn.execute("create temporary table events_probe (like intent.events including all)")
    conn.execute(
        """insert into events_probe (event_id, tenant_id, aggregate_type, aggregate_id, version,
                                     event_type, payload)
           select gen_random_uuid(), %s, %s, %s, v, 'inventory.stock_received',
                  jsonb_build_object('quantity', v)
           from generate_series(1, %s) v""",
        (tenant, TYPE, item, STREAM_EVENTS),
    )
    conn.execute(
        """insert into events_probe (event_id, tenant_id, aggregate_type, aggregate_id, version,
                                     event_type, payload)
           select gen_random_uuid(), gen_random_uuid(), %s, gen_random_uuid(), 1,
                  'inventory.item_registered', '{}'::jsonb
           from generate_series(1, 2000)""",
        (TYPE,),
    )
    try:
        yield {"tenant": tenant, "type": TYPE, "id": item, "after": STREAM_EVENTS - 50,
               "upto": None, "as_of": None}
    finally:
        conn.execute("drop table if exists events_probe")


def stream_index(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute(
        "select indexname from pg_indexes where tablename = 'events_probe'"
        " and indexdef like '%%(aggregate_type, aggregate_id, tenant_id, version)'"
    ).fetchall()
    assert len(rows) == 1, "the probe has no stream index in (type, id, tenant, version) order"
    return str(rows[0][0])


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def plan_of(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    row = conn.execute(f"explain (analyze, format json) {query}", params).fetchone()
    assert row is not None
    document = row[0] if isinstance(row[0], list) else json.loads(row[0])
    return list(nodes(document[0]["Plan"]))


@pytest.mark.parametrize(
    "query", [LOAD_AFTER, LOAD_PAGE, HEAD_IS_EXPECTED, HEAD, OTHER_TENANT],
    ids=["load after a snapshot", "fold page", "expected-version check", "head",
         "other tenant's aggregate"],
)
def test_stream_statements_probe_the_stream_index_without_statistics(
    conn: psycopg.Connection[Any], probe: dict[str, Any], query: str,
) -> None:
    unanalyzed = conn.execute(
        "select reltuples < 0 and last_analyze is null from pg_class c"
        " join pg_stat_user_tables s on s.relid = c.oid where c.relname = 'events_probe'"
    ).fetchone()
    assert unanalyzed == (True,), "the probe table must be without statistics"
    index = stream_index(conn)
    scans = [n for n in plan_of(conn, query, probe) if "Relation Name" in n]
    assert scans, "no scan of the probe table in the plan"
    for scan in scans:
        assert scan.get("Index Name") == index, scan
        assert scan.get("Rows Removed by Filter", 0) == 0, scan
        assert scan.get("Rows Removed by Index Recheck", 0) == 0, scan


def test_the_stream_index_is_the_only_index_on_its_columns(conn: psycopg.Connection[Any]) -> None:
    """The duplicate (aggregate_type, aggregate_id, tenant_id) index is gone from intent.events."""
    defs = [row[0] for row in conn.execute(
        "select indexdef from pg_indexes where schemaname = 'intent' and tablename = 'events'"
    ).fetchall()]
    on_stream = [d for d in defs if "aggregate_id" in d]
    assert len(on_stream) == 1, on_stream
    assert on_stream[0].endswith("(aggregate_type, aggregate_id, tenant_id, version)")
    assert "UNIQUE" in on_stream[0]


def test_a_stream_version_taken_twice_is_refused_by_name(conn: psycopg.Connection[Any]) -> None:
    """The constraint keeps its name: the store tells a lost race by it."""
    stream = (uuid4(), TYPE, uuid4())
    insert = ("insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,"
              " version, event_type, payload) values (%s, %s, %s, %s, 1,"
              " 'inventory.item_registered', '{}')")
    with conn.transaction(force_rollback=True):
        conn.execute(insert, (uuid4(), *stream))
        with pytest.raises(psycopg.errors.UniqueViolation) as refused:
            conn.execute(insert, (uuid4(), *stream))
    assert refused.value.diag.constraint_name == "events_stream_version_key"

