"""`public.aggregate_snapshots`, the console inspector's snapshot markers, called as PostgREST
calls it: the caller's tenant sees the versions of its aggregate's snapshots in order, another
tenant's token sees none (never an error), service_role only its token's tenant, anon is
refused, and a missing argument is PT400 malformed."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Snapshot, StreamId
from pump.store.connections import Conn
from pump.store.snapshots import PostgresSnapshotStore
from tests.support.db import execute
from tests.support.tenants import claims_json

pytestmark = pytest.mark.integration

CALL = "select public.aggregate_snapshots(aggregate_type => %s, aggregate_id => %s)"


async def markers(pool: AsyncConnectionPool[Conn], role: str, claims: str | None,
                  aggregate_type: str | None, aggregate_id: UUID | None) -> Any:
    """One request as `role` with the verified token's claims (None: anon, no token)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"set local role {role}")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (claims or json.dumps({"role": role}),))
        cur = await conn.execute(CALL, (aggregate_type, aggregate_id))
        row = await cur.fetchone()
        assert row is not None
        return row[0]


@pytest.fixture
async def item(pool: AsyncConnectionPool[Conn]) -> Any:
    """A stream of a fresh tenant with snapshots at 50 and 100 (saved out of order)."""
    stream = StreamId(tenant_id=uuid4(), aggregate_type="inventory.item", aggregate_id=uuid4())
    snapshots = PostgresSnapshotStore(pool)
    for version in (100, 50):
        await snapshots.save(Snapshot(stream=stream, version=version, schema_version=1,
                                      state={"registered": True, "on_hand": version}))
    yield stream
    await execute(pool, "delete from intent.snapshots where tenant_id = %s", stream.tenant_id)


async def test_the_owner_sees_the_versions_in_order_and_others_see_none(
    pool: AsyncConnectionPool[Conn], item: StreamId,
) -> None:
    mine = await markers(pool, "authenticated", claims_json(item.tenant_id),
                         item.aggregate_type, item.aggregate_id)
    assert [(m["version"], m["schema_version"]) for m in mine] == [(50, 1), (100, 1)]
    assert all(isinstance(m["taken_at"], str) for m in mine)
    assert set(mine[0]) == {"version", "schema_version", "taken_at"}  # never the state
    theirs = await markers(pool, "authenticated", claims_json(uuid4()),
                           item.aggregate_type, item.aggregate_id)
    assert theirs == []
    service = await markers(pool, "service_role", claims_json(uuid4(), role="service_role"),
                            item.aggregate_type, item.aggregate_id)
    assert service == []
    assert await markers(pool, "authenticated", claims_json(item.tenant_id),
                         "orders.order", item.aggregate_id) == []


async def test_anon_is_refused_and_a_missing_argument_is_malformed(
    pool: AsyncConnectionPool[Conn], item: StreamId,
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await markers(pool, "anon", None, item.aggregate_type, item.aggregate_id)
    with pytest.raises(psycopg.Error) as refused:
        await markers(pool, "authenticated", claims_json(item.tenant_id),
                      item.aggregate_type, None)
    assert refused.value.sqlstate == "PT400"
    assert refused.value.diag.message_hint == "malformed"
