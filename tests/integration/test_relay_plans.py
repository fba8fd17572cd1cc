"""The broadcast relay's step and its lag read the feed index whatever plan PostgreSQL
caches. A plpgsql function's statements are planned with their variables as parameters and,
after a few calls, may keep a generic plan: one that does not know where the checkpoint is.
An idle relay calls its step many times a second, so a step that then scanned intent.events
would cost a core on a large store (it did: 100 ms a call at half a million events).
`plan_cache_mode = force_generic_plan` makes every call use that plan."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support.db import table_scans

pytestmark = pytest.mark.integration


def scans(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    return table_scans(conn, "intent.events")


def test_an_idle_relay_step_and_the_lag_read_no_table_scan(
    conn: psycopg.Connection[Any],
) -> None:
    with conn.transaction(force_rollback=True):
        # Events enough that a sequential scan is a plan the planner could like, inserted
        # in this transaction (rolled back: no reader of the feed ever sees them).
        conn.execute(
            """insert into intent.events (event_id, tenant_id, aggregate_type, aggregate_id,
                                          version, event_type, payload, metadata)
               select gen_random_uuid(), gen_random_uuid(), 'plans.probe',
                      gen_random_uuid(), 1, 'plans.probed', '{}', '{}'
               from generate_series(1, 3000)"""
        )
        conn.execute("set local plan_cache_mode = force_generic_plan")
        for _ in range(100):  # relay what waits (in this transaction, rolled back too)
            row = conn.execute("select relayed from intent.relay_broadcasts(100000)").fetchone()
            if row is not None and row[0] == 0:
                break
        before = scans(conn)
        for _ in range(10):  # idle steps, each with its generic plan
            row = conn.execute("select relayed from intent.relay_broadcasts(1000)").fetchone()
            assert row is not None
            assert row[0] == 0
        conn.execute("select * from intent.broadcast_lag()").fetchone()
        seq, idx = scans(conn)
    assert seq == before[0], "an idle relay step or the lag scanned intent.events"
    assert idx > before[1], "the idle steps did not read the feed index at all"
