"""The console's operations RPCs (supabase/migrations/*_console_operations.sql), called as
PostgREST calls them: an operator sees the system; a tenant's user sees only their tenant's
command counts, the lag of a projection over their own events, `stopped` without the error
text, and a trace of their own correlation ids only (another tenant's is empty); anon is
refused, a token without a tenant or with an unusable sub is PT401, bad arguments PT400."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.db import execute, fetch_one
from tests.support.tenants import Tenants, claims_json

pytestmark = pytest.mark.integration

SECRET = "a secret of tenant A's payload"


async def call(pool: AsyncConnectionPool[Conn], claims: str | None, query: str,
               *args: Any, role: str = "authenticated") -> Any:
    """One request as `role` with the verified token's claims (None: anon, no token)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"set local role {role}")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (claims or json.dumps({"role": role}),))
        cur = await conn.execute(query, args)
        row = await cur.fetchone()
        assert row is not None
        return row[0]


@dataclass
class Seeded:
    tenant_a: UUID
    tenant_b: UUID
    operator: UUID
    consumer: str
    correlation: UUID
    batch: UUID


async def _command(pool: AsyncConnectionPool[Conn], tenant: UUID, status: str,
                   correlation: UUID, error: dict[str, Any] | None = None) -> UUID:
    command = uuid4()
    await execute(pool,
                  "insert into intent.commands (command_id, tenant_id, role, command_type,"
                  " aggregate_type, aggregate_id, payload, metadata, status, error) values"
                  " (%s, %s, 'authenticated', 'inventory.register_item', 'inventory.item',"
                  " %s, '{}', %s::jsonb, %s, %s::jsonb)",
                  command, tenant, uuid4(), json.dumps({"correlation_id": str(correlation)}),
                  status, json.dumps(error) if error else None)
    return command


async def _event(pool: AsyncConnectionPool[Conn], tenant: UUID, correlation: UUID,
                 cause: UUID, version: int, aggregate: UUID) -> None:
    metadata = {"tenant_id": str(tenant), "correlation_id": str(correlation),
                "causation_id": str(cause)}
    await execute(pool,
                  "insert into intent.events (event_id, tenant_id, aggregate_type,"
                  " aggregate_id, version, event_type, payload, metadata) values"
                  " (%s, %s, 'inventory.item', %s, %s, 'inventory.item_registered',"
                  " %s::jsonb, %s::jsonb)",
                  uuid4(), tenant, aggregate, version, json.dumps({"secret": SECRET}),
                  json.dumps(metadata))


@pytest.fixture
async def seeded(pool: AsyncConnectionPool[Conn], tenants: Tenants) -> AsyncIterator[Seeded]:
    """A checkpoint at the feed's head, then tenant A: 2 processed, 1 pending and 1 failed
    command and 3 events (2 of them one command's trace); tenant B: 1 processed command and
    1 event; a stopped consumer whose error quotes A; a stuck batch; an operator."""
    a, b = tenants.new(), tenants.new()
    seeded = Seeded(a, b, uuid4(), f"projection:console_probe_{uuid4().hex[:8]}@1", uuid4(),
                    uuid4())
    head = await fetch_one(pool, "select coalesce(max(transaction_id::text::bigint), 0),"
                                 " coalesce(max(position), 0) from intent.events")
    await execute(pool, "insert into intent.checkpoints (consumer, transaction_id, position,"
                        " error) values (%s, %s::text::xid8, %s, %s::jsonb)",
                  seeded.consumer, head[0], head[1], json.dumps({"message": SECRET}))
    traced = await _command(pool, a, "processed", seeded.correlation)
    await _command(pool, a, "processed", uuid4())
    await _command(pool, a, "pending", uuid4())
    await _command(pool, a, "failed", uuid4(), {"message": SECRET})
    await _command(pool, b, "processed", uuid4())
    item = uuid4()
    await _event(pool, a, seeded.correlation, traced, 1, item)
    await _event(pool, a, seeded.correlation, traced, 2, item)
    await _event(pool, a, uuid4(), uuid4(), 1, uuid4())
    await _event(pool, b, uuid4(), uuid4(), 1, uuid4())
    for saga, status in (("console.probe", "running"), ("console.probe", "completed")):
        await execute(pool, "insert into intent.saga_instances (workflow_id, tenant_id, saga,"
                            " instance, status, started_at, updated_at, next_timer_at, timers)"
                            " values (%s, %s, %s, %s, %s, now(), now(), %s, %s::jsonb)",
                      f"console-probe-{uuid4()}", a, saga, str(uuid4()), status,
                      "2030-01-01T00:00:00Z" if status == "running" else None,
                      '{"t": "2030-01-01T00:00:00Z"}' if status == "running" else "{}")
    await execute(pool, "insert into intent.operators (user_id) values (%s)", seeded.operator)
    await execute(pool, "insert into intent.batches (batch_id, command_count, updated_at,"
                        " last_error) values (%s, 1, now() - interval '5 minutes', %s::jsonb)",
                  seeded.batch, json.dumps({"message": SECRET}))
    try:
        yield seeded
    finally:
        await execute(pool, "delete from intent.checkpoints where consumer = %s",
                      seeded.consumer)
        await execute(pool, "delete from intent.operators where user_id = %s",
                      seeded.operator)
        await execute(pool, "delete from intent.batches where batch_id = %s", seeded.batch)
        await execute(pool, "delete from intent.saga_instances where tenant_id = %s", a)


def _consumer(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["consumers"] if c["consumer"] == name]
    assert len(found) == 1, report
    return found[0]


async def test_an_operator_sees_the_whole_system(
    pool: AsyncConnectionPool[Conn], seeded: Seeded,
) -> None:
    operator = claims_json(uuid4(), seeded.operator)
    health = await call(pool, operator, "select public.console_health()")
    assert health["scope"] == "system"
    assert health["commands"]["by_status"]["processed"] >= 3
    assert health["commands"]["failed_last_hour"] >= 1
    assert health["sagas"]["running"]["console.probe"] >= 1
    assert str(seeded.batch) in [b["batch_id"] for b in health["stuck_batches"]]
    assert "intent.realtime_relay" in [c["consumer"] for c in health["consumers"]]
    assert set(health) >= {"held_back_by", "feed_head", "stuck_after_seconds"}
    probe = _consumer(health, seeded.consumer)
    assert probe["lag_events"] >= 4
    assert probe["stopped"]
    assert SECRET in json.dumps(probe["error"])

    models = await call(pool, operator, "select public.console_read_models()")
    assert models["scope"] == "system"
    assert _consumer(models, seeded.consumer)["lag_events"] >= 4

    trace = await call(pool, operator, "select public.console_trace(%s)", seeded.correlation)
    assert trace["scope"] == "system"
    assert sorted(n["kind"] for n in trace["nodes"]) == ["command", "event", "event"]


async def test_a_tenant_sees_only_its_own_counts_lag_and_traces(
    pool: AsyncConnectionPool[Conn], seeded: Seeded,
) -> None:
    user_a, user_b = claims_json(seeded.tenant_a), claims_json(seeded.tenant_b)
    health_a = await call(pool, user_a, "select public.console_health()")
    health_b = await call(pool, user_b, "select public.console_health()")
    assert health_a["scope"] == health_b["scope"] == "tenant"
    assert health_a["commands"]["by_status"] == {
        "pending": 1, "dispatched": 0, "processed": 2, "rejected": 0, "failed": 1}
    assert health_a["commands"]["failed_last_hour"] == 1
    assert health_a["commands"]["oldest_pending_seconds"] is not None
    assert health_b["commands"]["by_status"]["processed"] == 1
    assert health_b["commands"]["by_status"]["failed"] == 0
    assert health_b["commands"]["oldest_pending_seconds"] is None
    assert health_a["sagas"]["running"] == {"console.probe": 1}
    assert health_a["sagas"]["next_timer_at"].startswith("2030-01-01")
    assert health_a["sagas"]["completed_last_hour"] == 1
    assert health_b["sagas"] == {"running": {}, "next_timer_at": None, "completed_last_hour": 0}
    for report in (health_a, health_b):
        assert not {"stuck_batches", "consumers", "held_back_by", "feed_head"} & set(report)
        assert SECRET not in json.dumps(report)

    models_a = await call(pool, user_a, "select public.console_read_models()")
    models_b = await call(pool, user_b, "select public.console_read_models()")
    assert _consumer(models_a, seeded.consumer)["lag_events"] == 3
    probe_b = _consumer(models_b, seeded.consumer)
    assert probe_b["lag_events"] == 1
    assert probe_b["stopped"]
    assert not probe_b["lag_capped"]
    assert "error" not in probe_b
    assert "updated_seconds_ago" not in probe_b
    assert SECRET not in json.dumps(models_b)
    assert {c["kind"] for c in models_b["consumers"]} == {"projection"}

    mine = await call(pool, user_a, "select public.console_trace(%s)", seeded.correlation)
    assert mine["scope"] == "tenant"
    assert len(mine["nodes"]) == 3
    command = next(n for n in mine["nodes"] if n["kind"] == "command")
    assert all(n["causation_id"] == command["id"] for n in mine["nodes"] if n["kind"] == "event")
    theirs = await call(pool, user_b, "select public.console_trace(%s)", seeded.correlation)
    assert theirs["nodes"] == []
    assert not theirs["truncated"]


async def test_a_consumer_without_a_checkpoint_is_behind_by_the_callers_events(
    pool: AsyncConnectionPool[Conn], seeded: Seeded,
) -> None:
    fresh = f"projection:never_ran_{uuid4().hex[:8]}@3"
    models = await call(pool, claims_json(seeded.tenant_b),
                        "select public.console_read_models(%s)", [fresh])
    entry = _consumer(models, fresh)
    assert entry["checkpoint"] is None
    assert entry["lag_events"] == 1
    assert not entry["stopped"]
    operator = claims_json(uuid4(), seeded.operator)
    health = await call(pool, operator, "select public.console_health(60, %s)", [fresh])
    assert _consumer(health, fresh)["lag_events"] >= 4
    assert _consumer(health, fresh)["checkpoint"] is None


async def test_anon_and_unusable_tokens_are_refused(
    pool: AsyncConnectionPool[Conn], seeded: Seeded,
) -> None:
    for query in ("select public.console_health()", "select public.console_read_models()",
                  "select public.console_trace(gen_random_uuid())"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await call(pool, None, query, role="anon")
        no_tenant = json.dumps({"sub": str(uuid4()), "role": "authenticated"})
        with pytest.raises(psycopg.Error) as refused:
            await call(pool, no_tenant, query)
        assert (refused.value.sqlstate, refused.value.diag.message_hint) == ("PT401",
                                                                              "no_tenant")
        bad_sub = json.dumps({"sub": "not-a-uuid", "role": "authenticated",
                              "app_metadata": {"tenant_id": str(seeded.tenant_a)}})
        with pytest.raises(psycopg.Error) as refused:
            await call(pool, bad_sub, query)
        assert (refused.value.sqlstate, refused.value.diag.message_hint) == ("PT401",
                                                                              "invalid_claims")
    # An operator needs no tenant.
    operator = json.dumps({"sub": str(seeded.operator), "role": "authenticated"})
    assert (await call(pool, operator, "select public.console_health()"))["scope"] == "system"


@pytest.mark.parametrize(("query", "args"), [
    ("select public.console_health(%s)", (-1.0,)),
    ("select public.console_health(%s)", (float("nan"),)),
    ("select public.console_health(%s)", (None,)),
    ("select public.console_read_models(%s)", (["stock_levels"],)),
    ("select public.console_health(60, %s)", (["projection:x@0"],)),
    ("select public.console_read_models(%s)", ([f"projection:p@{n}" for n in range(1, 70)],)),
    ("select public.console_trace(%s)", (None,)),
])
async def test_bad_arguments_are_malformed(
    pool: AsyncConnectionPool[Conn], query: str, args: tuple[Any, ...],
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        await call(pool, claims_json(uuid4()), query, *args)
    assert (refused.value.sqlstate, refused.value.diag.message_hint) == ("PT400", "malformed")


async def test_the_operators_table_is_closed_to_clients(
    pool: AsyncConnectionPool[Conn], seeded: Seeded,
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await call(pool, claims_json(seeded.tenant_a), "select count(*) from intent.operators")
    flags = await fetch_one(pool, "select relrowsecurity, relforcerowsecurity from pg_class"
                                  " where oid = 'intent.operators'::regclass")
    assert flags == (True, True)
    assert await call(pool, claims_json(uuid4(), seeded.operator),
                      "select intent.caller_is_operator()") is True
    assert await call(pool, claims_json(seeded.tenant_a),
                      "select intent.caller_is_operator()") is False
