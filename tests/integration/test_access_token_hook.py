"""The access-token hook on real memberships: the tenancy commands go through the ingress
and the pipeline (memberships is inline), then `public.custom_access_token_hook` is called
as Supabase Auth calls it (as supabase_auth_admin) and must put the user's active tenant and
role into app_metadata; a removed member's next token has no tenant; no client may call
the hook; the membership RPCs show a user their own, and a tenant's members to its admins."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.ingress import submit_with_claims
from tests.support.pipeline import running_pumps, shop_processor, wait_terminal
from tools.settings import LOCAL_PASSWORD

pytestmark = pytest.mark.integration


def claims(user: UUID, tenant: UUID | None = None) -> dict[str, Any]:
    metadata = {"provider": "email"} | ({"tenant_id": str(tenant)} if tenant else {})
    return {"sub": str(user), "role": "authenticated", "aud": "authenticated",
            "app_metadata": metadata}


async def run(pool: AsyncConnectionPool[Conn], url: str,
              *sent: tuple[dict[str, Any], str, dict[str, Any]]) -> list[str]:
    """Each command in turn, through the pipeline; their outcomes."""
    outcomes: list[str] = []
    async with running_pumps(pool, url, processor=shop_processor(pool)):
        for who, command_type, payload in sent:
            done = await submit_with_claims(pool, who, command_type, payload)
            final = await wait_terminal(pool, [UUID(done["command_id"])])
            outcomes += final.values()
    return outcomes


async def hook(url: str, user: UUID,
               app_metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """The claims Supabase Auth would issue after the hook, called as Auth calls it: logged
    in as supabase_auth_admin."""
    event = {"user_id": str(user), "authentication_method": "password",
             "claims": claims(user) | ({"app_metadata": app_metadata} if app_metadata else {})}
    as_auth = make_conninfo(url, user="supabase_auth_admin", password=LOCAL_PASSWORD)
    async with await psycopg.AsyncConnection.connect(as_auth) as conn:
        row = await (await conn.execute("select public.custom_access_token_hook(%s)",
                                        (Jsonb(event),))).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]["claims"]["app_metadata"]
    return result


async def rpc(pool: AsyncConnectionPool[Conn], who: dict[str, Any],
              function: str) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("set local role authenticated")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (json.dumps(who),))
        return await (await conn.execute(f"select * from public.{function}()")).fetchall()


async def test_the_token_carries_the_active_tenant_until_the_member_is_removed(
    pool: AsyncConnectionPool[Conn], database_url: str,
) -> None:
    owner, guest, tenant, invitation = uuid4(), uuid4(), uuid4(), uuid4()
    assert await hook(database_url, owner) == {"provider": "email"}  # signed up, no tenant yet
    outcomes = await run(
        pool, database_url,
        (claims(owner), "tenancy.create_tenant", {"tenant_id": str(tenant), "name": "Acme"}),
        (claims(owner, tenant), "tenancy.invite_member",
         {"tenant_id": str(tenant), "invitation_id": str(invitation)}),
        (claims(guest), "tenancy.accept_invitation",
         {"tenant_id": str(tenant), "invitation_id": str(invitation)}),
    )
    assert outcomes == ["processed"] * 3
    assert await hook(database_url, owner) == {"provider": "email", "tenant_id": str(tenant),
                                       "tenant_role": "owner"}
    assert (await hook(database_url, guest))["tenant_id"] == str(tenant)

    # The guest creates a tenant of their own: the newest becomes active; switching back
    # makes the first one active again.
    own = uuid4()
    await run(pool, database_url,
              (claims(guest, tenant), "tenancy.create_tenant",
               {"tenant_id": str(own), "name": "Guest's"}))
    assert await hook(database_url, guest) == {"provider": "email", "tenant_id": str(own),
                                       "tenant_role": "owner"}
    await run(pool, database_url,
              (claims(guest, own), "tenancy.switch_tenant", {"tenant_id": str(tenant)}))
    assert await hook(database_url, guest) == {"provider": "email", "tenant_id": str(tenant),
                                       "tenant_role": "member"}
    assert {row[0] for row in await rpc(pool, claims(guest, tenant), "my_memberships")} == {
        tenant, own}

    # Only the tenant's owner and admins list its members.
    assert await rpc(pool, claims(guest, tenant), "tenant_members") == []
    members = await rpc(pool, claims(owner, tenant), "tenant_members")
    assert {(row[0], row[1]) for row in members} == {(owner, "owner"), (guest, "member")}

    # Removed: the next token falls back to the guest's own tenant, whatever app_metadata
    # said before.
    await run(pool, database_url,
              (claims(owner, tenant), "tenancy.remove_member",
               {"tenant_id": str(tenant), "user_id": str(guest)}))
    assert (await hook(database_url, guest, {"tenant_id": str(tenant)}))["tenant_id"] == str(own)


async def test_a_user_without_memberships_gets_no_tenant_whatever_the_metadata_says(
    database_url: str,
) -> None:
    forged = {"tenant_id": str(uuid4()), "tenant_role": "owner", "provider": "email"}
    assert await hook(database_url, uuid4(), forged) == {"provider": "email"}


@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_no_client_may_call_the_hook(pool: AsyncConnectionPool[Conn], role: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(f"set local role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("select public.custom_access_token_hook('{}'::jsonb)")
