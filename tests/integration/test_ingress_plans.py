"""The ingress runs on every request: its checks read indexes whatever plan PostgreSQL
caches (plpgsql keeps generic plans, which do not know the values; `plan_cache_mode =
force_generic_plan` makes every call use one)."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from tests.support.db import table_scans

pytestmark = pytest.mark.integration


def test_submitting_commands_reads_no_whole_table_whatever_the_plan(
    conn: psycopg.Connection[Any],
) -> None:
    """The ingress runs on every request; its checks (the target's other tenants, the
    idempotent retry, the per-tenant limits) must probe indexes under a generic plan too."""
    tenant = uuid4()
    claims = json.dumps({"sub": str(uuid4()), "role": "authenticated",
                         "app_metadata": {"tenant_id": str(tenant)}})
    tables = ("intent.events", "intent.commands")
    with conn.transaction(force_rollback=True):
        conn.execute("set local plan_cache_mode = force_generic_plan")
        before = {t: table_scans(conn, t) for t in tables}
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        for n in range(8):  # past plpgsql's first custom plans, had it kept any
            conn.execute(
                "select public.submit_command(command_type => 'inventory.register_item',"
                " payload => %s::jsonb)",
                (json.dumps({"item_id": str(uuid4()), "sku": f"S-{n}", "name": "Bolt"}),))
        conn.execute("reset role")
        after = {t: table_scans(conn, t) for t in tables}
    for table in tables:
        assert after[table][0] == before[table][0], f"submit_command scanned {table}"
        assert after[table][1] > before[table][1], f"submit_command never read {table}"
