"""The SQL ingress (`public.submit_command`) against a real PostgreSQL, called as PostgREST
calls it: one transaction per request, `set local role authenticated`, the verified JWT's
claims in `request.jwt.claims`, then the function with named arguments, then COMMIT.

The pgTAP suite (supabase/tests/database/command_ingress.test.sql) covers each refusal in
one transaction; here are the things only several connections can show: concurrency,
NOTIFY delivery, and refusals as a client library sees them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Metadata
from projections.shop import registry
from pump.store.connections import Conn
from tests.support.builders import TRACEPARENT
from tests.support.db import fetch_all
from tests.support.ingress import (
    Caller,
    begin_request,
    call_submit,
    register,
    submit,
    submit_with_claims,
)
from tests.support.tenants import Tenants
from tools import settings
from tools.codegen.command_types import check

pytestmark = pytest.mark.integration


# -- the allow list ----------------------------------------------------------------------------


def test_the_committed_command_types_migration_is_current() -> None:
    """`./run test` fails here when the registry changed and nobody ran the generator."""
    result = check(settings.migrations_dir(), registry)
    assert result.ok, result.message


async def test_the_migrated_allow_list_is_the_registry(pool: AsyncConnectionPool[Conn]) -> None:
    rows = await fetch_all(
        pool,
        "select command_type, aggregate_type, aggregate_id_field, roles"
        " from intent.command_types order by command_type",
    )
    expected = sorted(
        (c.name, c.aggregate.type_name, c.aggregate_id_field, sorted(c.roles))
        for c in registry.command_types().values()
    )
    assert [(r[0], r[1], r[2], sorted(r[3])) for r in rows] == expected


# -- idempotency under concurrency -------------------------------------------------------------


async def test_one_command_id_from_eight_connections_at_once_is_one_command(
    database_url: str, pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    caller = Caller(tenant_id=tenants.new())
    command_id, item_id = uuid4(), uuid4()
    barrier = asyncio.Barrier(8)

    async def one_request(sku: str) -> dict[str, Any]:
        async with (
            await psycopg.AsyncConnection.connect(database_url) as conn,
            conn.transaction(),
        ):
            await begin_request(conn, caller)
            await barrier.wait()  # everyone is inside a transaction: go
            return await call_submit(
                conn, "inventory.register_item", register(item_id, sku), command_id=command_id
            )

    answers = await asyncio.gather(*(one_request(f"SKU-{n}") for n in range(8)))

    assert answers == [{"command_id": str(command_id), "status": "pending"}] * 8
    rows = await fetch_all(
        pool, "select command_id, payload ->> 'sku' from intent.commands where tenant_id = %s",
        caller.tenant_id,
    )
    assert len(rows) == 1
    assert rows[0][0] == command_id
    assert rows[0][1] in {f"SKU-{n}" for n in range(8)}


@pytest.mark.parametrize("first_ends_with", ["commit", "rollback"])
async def test_a_duplicate_waits_for_the_first_and_then_answers_what_was_stored(
    database_url: str, pool: AsyncConnectionPool[Conn], tenants: Tenants, first_ends_with: str
) -> None:
    caller = Caller(tenant_id=tenants.new())
    command_id, item_id = uuid4(), uuid4()
    first = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await first.execute("begin")
        await begin_request(first, caller)
        await call_submit(first, "inventory.register_item", register(item_id, "FIRST"),
                          command_id=command_id)
        waiting = [
            asyncio.create_task(
                submit(pool, caller, "inventory.register_item", register(item_id, f"LATER-{n}"),
                       command_id=command_id)
            )
            for n in range(3)
        ]
        await asyncio.sleep(0.3)
        assert not any(task.done() for task in waiting), "duplicates must wait for the first"
        await first.execute(first_ends_with)
        answers = await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
    finally:
        await first.close()

    assert answers == [{"command_id": str(command_id), "status": "pending"}] * 3
    rows = await fetch_all(
        pool, "select payload ->> 'sku' from intent.commands where command_id = %s", command_id
    )
    assert len(rows) == 1
    if first_ends_with == "commit":
        assert rows == [("FIRST",)]
    else:  # the first never happened, so one of the waiting requests stored its own
        assert rows[0][0].startswith("LATER-")


async def test_two_tenants_racing_for_one_new_aggregate_id_one_wins(
    database_url: str, pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    callers = [Caller(tenant_id=tenants.new()) for _ in range(2)]
    item_id = uuid4()
    barrier = asyncio.Barrier(len(callers))

    async def one_request(caller: Caller) -> str:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            try:
                async with conn.transaction():
                    await begin_request(conn, caller)
                    await barrier.wait()
                    await call_submit(conn, "inventory.register_item", register(item_id))
            except psycopg.Error as error:
                return f"{error.sqlstate} {error.diag.message_hint}"
            return "accepted"

    outcomes = await asyncio.gather(*(one_request(c) for c in callers))

    assert sorted(outcomes) == ["PT403 forbidden", "accepted"]
    owners = await fetch_all(
        pool, "select distinct tenant_id from intent.commands where aggregate_id = %s", item_id
    )
    assert len(owners) == 1


# -- many callers ------------------------------------------------------------------------------


async def test_commands_of_many_users_of_two_tenants_are_stored_as_their_own(
    pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    callers = [
        Caller(tenant_id=tenant) for tenant in (tenants.new(), tenants.new()) for _ in range(3)
    ]
    per_caller = 5
    sent: dict[UUID, tuple[Caller, UUID]] = {}  # command id -> (caller, correlation id)

    async def send(caller: Caller) -> None:
        for _ in range(per_caller):
            command_id, correlation_id = uuid4(), uuid4()
            sent[command_id] = (caller, correlation_id)
            # (A payload naming a tenant or user is refused: the model has no such field.)
            payload = register(uuid4())
            answer = await submit(
                pool, caller, "inventory.register_item", payload, command_id=command_id,
                correlation_id=correlation_id, traceparent=TRACEPARENT,
            )
            assert answer == {"command_id": str(command_id), "status": "pending"}

    await asyncio.gather(*(send(caller) for caller in callers))

    rows = await fetch_all(
        pool,
        "select command_id, tenant_id, user_id, role, command_type, aggregate_type,"
        " aggregate_id, payload, metadata, status from intent.commands"
        " where tenant_id = any(%s)",
        tenants.made,
    )
    assert len(rows) == len(callers) * per_caller == len(sent)
    for row in rows:
        (command_id, tenant_id, user_id, role, command_type, agg_type, agg_id, payload, raw,
         status) = row
        caller, correlation_id = sent[command_id]
        assert (tenant_id, user_id, role) == (caller.tenant_id, caller.user_id, "authenticated")
        assert (command_type, agg_type, status) == (
            "inventory.register_item", "inventory.item", "pending"
        )
        assert str(agg_id) == payload["item_id"]
        metadata = Metadata.model_validate(raw)
        assert metadata.tenant_id == caller.tenant_id
        assert metadata.user_id == caller.user_id
        assert metadata.role == "authenticated"
        assert metadata.correlation_id == correlation_id
        assert metadata.causation_id is None
        assert metadata.traceparent == TRACEPARENT
        assert metadata.occurred_at.tzinfo is not None


async def test_stored_metadata_validates_with_defaults_too(
    pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    caller = Caller(tenant_id=tenants.new())
    answer = await submit(
        pool, caller, "inventory.receive_stock", {"item_id": str(uuid4()), "quantity": 3}
    )
    rows = await fetch_all(
        pool, "select metadata from intent.commands where command_id = %s",
        UUID(answer["command_id"]),
    )
    metadata = Metadata.model_validate(rows[0][0])
    assert metadata.tenant_id == caller.tenant_id
    assert metadata.traceparent is None
    assert isinstance(metadata.correlation_id, UUID)


async def test_command_status_answers_only_the_commands_sender(
    pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    owner, other = Caller(tenant_id=tenants.new()), Caller(tenant_id=tenants.new())
    answer = await submit(pool, owner, "inventory.register_item", register(uuid4()))

    async def status_as(caller: Caller) -> Any:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("set transaction read only")  # as PostgREST runs STABLE calls
            await begin_request(conn, caller)
            cur = await conn.execute(
                "select public.command_status(command_id => %s)", (UUID(answer["command_id"]),)
            )
            row = await cur.fetchone()
            assert row is not None
            return row[0]

    mine = await status_as(owner)
    assert mine["command_id"] == answer["command_id"]
    assert mine["status"] == "pending"
    assert await status_as(Caller(tenant_id=owner.tenant_id)) is None  # same tenant, other user
    assert await status_as(other) is None


# -- NOTIFY ------------------------------------------------------------------------------------


async def test_a_listener_is_woken_after_a_submit_commits(
    database_url: str, pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    caller = Caller(tenant_id=tenants.new())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("listen intent_commands")
        await submit(pool, caller, "inventory.register_item", register(uuid4()))
        received = [n async for n in listener.notifies(timeout=5, stop_after=1)]
    assert received, "no notification on intent_commands within 5 s of the commit"
    assert received[0].channel == "intent_commands"


async def test_a_refused_submit_wakes_nobody(
    database_url: str, pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    caller = Caller(tenant_id=tenants.new())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute("listen intent_commands")
        with pytest.raises(psycopg.Error):
            await submit(pool, caller, "inventory.register_item", {"sku": "no id"})
        received = [n async for n in listener.notifies(timeout=0.5, stop_after=1)]
    assert received == []


# -- refusals, as a client sees them -----------------------------------------------------------


def _payload_too_large() -> dict[str, Any]:
    return register(uuid4()) | {"name": "x" * 70_000}


@pytest.mark.parametrize(
    ("command_type", "make_payload", "claims_change", "sqlstate", "hint"),
    [
        ("inventory.nope", lambda: register(uuid4()), {}, "PT400", "unknown_command_type"),
        ("inventory.register_item", lambda: {"sku": "x"}, {}, "PT400", "malformed"),
        ("inventory.register_item", _payload_too_large, {}, "PT413", "payload_too_large"),
        ("inventory.register_item", lambda: register(uuid4()), {"app_metadata": {}}, "PT401",
         "no_tenant"),
        ("inventory.register_item", lambda: register(uuid4()), {"role": "anon_ish"}, "PT403",
         "forbidden"),
    ],
    ids=["unknown type", "malformed", "too large", "no tenant", "forbidden role"],
)
async def test_refusals_carry_their_status_code_and_hint_and_store_nothing(
    pool: AsyncConnectionPool[Conn],
    tenants: Tenants,
    command_type: str,
    make_payload: Callable[[], dict[str, Any]],
    claims_change: dict[str, Any],
    sqlstate: str,
    hint: str,
) -> None:
    caller = Caller(tenant_id=tenants.new())
    claims = json.loads(caller.claims()) | claims_change
    with pytest.raises(psycopg.Error) as caught:
        await submit_with_claims(pool, claims, command_type, make_payload())
    assert caught.value.sqlstate == sqlstate
    assert caught.value.diag.message_hint == hint
    assert caught.value.diag.message_primary  # a sentence for people, beside the code
    rows = await fetch_all(
        pool, "select count(*) from intent.commands where tenant_id = %s", caller.tenant_id
    )
    assert rows == [(0,)]
