"""Commands that name their tenant, through the SQL ingress and the pipeline: a user whose
token carries no tenant creates one (filed under the tenant the payload names, decided on
the verified sender), sees their own command's status, and cannot name the actor; a
command type that does not name its tenant still needs one in the token; an outsider's
command into someone else's tenant is filed there and refused by the aggregate."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.ingress import call_submit, submit_with_claims
from tests.support.pipeline import running_pumps, wait_terminal

pytestmark = pytest.mark.integration


def no_tenant(user: UUID) -> dict[str, Any]:
    """A freshly signed-in user's claims: no app_metadata.tenant_id yet."""
    return {"sub": str(user), "role": "authenticated", "app_metadata": {}}


def of_tenant(user: UUID, tenant: UUID) -> dict[str, Any]:
    return {"sub": str(user), "role": "authenticated",
            "app_metadata": {"tenant_id": str(tenant)}}


async def submit_as(pool: AsyncConnectionPool[Conn], claims: dict[str, Any], command_type: str,
                    payload: dict[str, Any], **options: Any) -> dict[str, Any]:
    """One request with these claims (and a command id of the caller's, when given)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("set local role authenticated")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (json.dumps(claims),))
        return await call_submit(conn, command_type, payload, **options)


async def status_as(pool: AsyncConnectionPool[Conn], claims: dict[str, Any],
                    command_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("set local role authenticated")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (json.dumps(claims),))
        row = await (await conn.execute("select public.command_status(%s)",
                                        (command_id,))).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def test_a_user_without_a_tenant_creates_one_and_owns_it(
    pool: AsyncConnectionPool[Conn], database_url: str,
) -> None:
    user, tenant = uuid4(), uuid4()
    sent = await submit_with_claims(pool, no_tenant(user), "tenancy.create_tenant",
                                    {"tenant_id": str(tenant), "name": "Acme"})
    async with running_pumps(pool, database_url):
        final = await wait_terminal(pool, [UUID(sent["command_id"])])
    assert set(final.values()) == {"processed"}
    async with pool.connection() as conn:
        filed = await (await conn.execute(
            "select tenant_id, user_id from intent.commands where command_id = %s",
            (sent["command_id"],))).fetchone()
        events = await (await conn.execute(
            "select event_type, tenant_id, payload from intent.events"
            " where aggregate_type = 'tenancy.tenant' and aggregate_id = %s order by version",
            (tenant,))).fetchall()
    assert filed == (tenant, user)
    assert [(e[0], e[1]) for e in events] == [("tenancy.tenant_created", tenant),
                                              ("tenancy.member_joined", tenant)]
    assert events[0][2]["owner"] == str(user)  # the verified sender, not anything it said
    seen = await status_as(pool, no_tenant(user), sent["command_id"])
    assert seen is not None
    assert seen["status"] == "processed"
    # Also with a token of another tenant (a member of one creating a second), never for
    # someone else.
    assert await status_as(pool, of_tenant(user, uuid4()), sent["command_id"]) is not None
    assert await status_as(pool, no_tenant(uuid4()), sent["command_id"]) is None


async def test_a_client_naming_the_actor_is_refused_and_nothing_is_stored(
    pool: AsyncConnectionPool[Conn],
) -> None:
    user, tenant = uuid4(), uuid4()
    with pytest.raises(psycopg.Error) as refused:
        await submit_with_claims(pool, no_tenant(user), "tenancy.create_tenant",
                                 {"tenant_id": str(tenant), "name": "Acme",
                                  "actor": str(uuid4())})
    assert refused.value.diag.message_hint == "malformed"
    assert "actor" in str(refused.value)
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select count(*) from intent.commands where tenant_id = %s", (tenant,))).fetchone()
    assert row == (0,)


async def test_a_command_that_does_not_name_its_tenant_still_needs_one_in_the_token(
    pool: AsyncConnectionPool[Conn],
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        await submit_with_claims(pool, no_tenant(uuid4()), "inventory.register_item",
                                 {"item_id": str(uuid4()), "sku": "S", "name": "N"})
    assert refused.value.diag.message_hint == "no_tenant"


async def test_an_outsiders_command_into_another_tenant_is_refused_by_the_tenant(
    pool: AsyncConnectionPool[Conn], database_url: str,
) -> None:
    owner, outsider, tenant = uuid4(), uuid4(), uuid4()
    created = await submit_with_claims(pool, no_tenant(owner), "tenancy.create_tenant",
                                       {"tenant_id": str(tenant), "name": "Acme"})
    meddling = await submit_with_claims(
        pool, of_tenant(outsider, uuid4()), "tenancy.invite_member",
        {"tenant_id": str(tenant), "invitation_id": str(uuid4()), "role": "admin"})
    async with running_pumps(pool, database_url):
        final = await wait_terminal(
            pool, [UUID(created["command_id"]), UUID(meddling["command_id"])])
    assert final == {UUID(created["command_id"]): "processed",
                     UUID(meddling["command_id"]): "rejected"}
    async with pool.connection() as conn:
        error = await (await conn.execute(
            "select error from intent.commands where command_id = %s",
            (meddling["command_id"],))).fetchone()
    assert error is not None
    assert error[0]["code"] == "not_a_member"


async def test_a_sender_has_one_command_into_another_tenant_at_a_time(
    pool: AsyncConnectionPool[Conn], database_url: str,
) -> None:
    flooder, victim = uuid4(), uuid4()
    invite = {"tenant_id": str(victim), "invitation_id": str(uuid4())}
    first_id = UUID((await submit_as(pool, no_tenant(flooder), "tenancy.accept_invitation",
                                     invite))["command_id"])
    # A retry of the same command is not a second one.
    retried = await submit_as(pool, no_tenant(flooder), "tenancy.accept_invitation", invite,
                              command_id=first_id)
    assert UUID(retried["command_id"]) == first_id
    with pytest.raises(psycopg.Error) as refused:  # the first is still pending
        await submit_with_claims(pool, no_tenant(flooder), "tenancy.accept_invitation",
                                 {**invite, "invitation_id": str(uuid4())})
    assert refused.value.diag.message_hint == "busy"
    assert refused.value.diag.sqlstate == "PT429"
    # Someone else is not held up by it, nor is the flooder in a tenant of their own.
    other = await submit_with_claims(pool, no_tenant(uuid4()), "tenancy.create_tenant",
                                     {"tenant_id": str(uuid4()), "name": "Other"})
    own = uuid4()
    in_own = await submit_with_claims(pool, of_tenant(flooder, own), "tenancy.switch_tenant",
                                      {"tenant_id": str(own)})
    async with running_pumps(pool, database_url):
        await wait_terminal(pool, [first_id, UUID(other["command_id"]),
                                   UUID(in_own["command_id"])])
    # Once the first has finished (rejected: there is no such tenant), the next may go.
    again = await submit_with_claims(pool, no_tenant(flooder), "tenancy.accept_invitation",
                                     {**invite, "invitation_id": str(uuid4())})
    assert again["status"] == "pending"
