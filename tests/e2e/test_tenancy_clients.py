"""Tenancy as an app's users live it, with supabase-py's async client, unchanged, against the
gateway (its /auth/v1 with the access-token hook) and the real pipeline: an owner signs up,
creates a tenant and stocks an item; a second user signs up, accepts the owner's invitation,
refreshes, and reads the tenant's data; the owner removes them, and their next refresh
carries no tenant: they read nothing and may send nothing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_functions.errors import FunctionsHttpError

from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key, verify

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

PASSWORD = "a long enough secret"


async def signed_up(gateway: RunningGateway, name: str) -> AsyncClient:
    client = await acreate_client(gateway.url, anon_key(), AsyncClientOptions(
        auto_refresh_token=False, persist_session=False))
    await client.auth.sign_up({"email": f"{name}-{uuid4().hex[:8]}@example.com",
                               "password": PASSWORD})
    return client


async def send(client: AsyncClient, command_type: str, payload: dict[str, Any]) -> str:
    answer = await client.functions.invoke("command", {"responseType": "json", "body": {
        "type": command_type, "payload": payload, "wait": True}})
    assert isinstance(answer, dict), answer
    return str(answer["status"])


async def tenant_claims(client: AsyncClient) -> dict[str, Any]:
    """The app_metadata of the token a refresh gives now."""
    refreshed = await client.auth.refresh_session()
    assert refreshed.session is not None
    metadata: dict[str, Any] = verify(refreshed.session.access_token)["app_metadata"]
    return metadata


async def items(client: AsyncClient) -> set[str]:
    rows: Any = (
        await client.table("stock_levels").select("item_id").execute()).data
    return {str(row["item_id"]) for row in rows}


async def test_a_member_joins_by_invitation_and_loses_access_when_removed(
    gateway: RunningGateway, pipeline: None,
) -> None:
    owner, guest = await signed_up(gateway, "owner"), await signed_up(gateway, "guest")
    tenant, invitation, item = str(uuid4()), str(uuid4()), str(uuid4())
    try:
        assert await send(owner, "tenancy.create_tenant",
                          {"tenant_id": tenant, "name": "Acme"}) == "processed"
        assert (await tenant_claims(owner))["tenant_id"] == tenant
        assert await send(owner, "inventory.register_item",
                          {"item_id": item, "sku": "T-1", "name": "Tea"}) == "processed"
        assert await send(owner, "tenancy.invite_member",
                          {"tenant_id": tenant, "invitation_id": invitation}) == "processed"

        assert "tenant_id" not in await tenant_claims(guest)
        assert await items(guest) == set()
        assert await send(guest, "tenancy.accept_invitation",
                          {"tenant_id": tenant, "invitation_id": invitation}) == "processed"
        joined = await tenant_claims(guest)
        assert (joined["tenant_id"], joined["tenant_role"]) == (tenant, "member")
        assert await items(guest) == {item}
        members: Any = (await owner.rpc("tenant_members", {}).execute()).data
        assert len(members) == 2
        assert (await guest.rpc("tenant_members", {}).execute()).data == []

        guest_id = verify((await guest.auth.get_session()).access_token)["sub"]  # type: ignore[union-attr]
        assert await send(owner, "tenancy.remove_member",
                          {"tenant_id": tenant, "user_id": guest_id}) == "processed"
        assert "tenant_id" not in await tenant_claims(guest)
        assert await items(guest) == set()
        with pytest.raises(FunctionsHttpError) as refused:  # 401, its body as the message
            await send(guest, "inventory.register_item",
                       {"item_id": str(uuid4()), "sku": "X", "name": "Nope"})
        assert "no_tenant" in str(refused.value.message)
    finally:
        for client in (owner, guest):
            await client.realtime.close()


async def test_a_member_of_one_tenant_gets_nothing_of_another(
    gateway: RunningGateway, pipeline: None,
) -> None:
    acme, globex = await signed_up(gateway, "acme"), await signed_up(gateway, "globex")
    a, b, item = str(uuid4()), str(uuid4()), str(uuid4())
    try:
        assert await send(acme, "tenancy.create_tenant", {"tenant_id": a, "name": "A"}) == (
            "processed")
        assert await send(globex, "tenancy.create_tenant", {"tenant_id": b, "name": "B"}) == (
            "processed")
        assert (await tenant_claims(acme))["tenant_id"] == a
        assert (await tenant_claims(globex))["tenant_id"] == b
        assert await send(acme, "inventory.register_item",
                          {"item_id": item, "sku": "A-1", "name": "A's"}) == "processed"
        assert await items(acme) == {item}
        assert await items(globex) == set()
        # Joining A needs an invitation A made; switching to A needs a membership there.
        assert await send(globex, "tenancy.accept_invitation",
                          {"tenant_id": a, "invitation_id": str(uuid4())}) == "rejected"
        assert await send(globex, "tenancy.switch_tenant", {"tenant_id": a}) == "rejected"
        assert (await tenant_claims(globex))["tenant_id"] == b
        assert (await globex.rpc("tenant_members", {}).execute()).data != []  # B's own
        assert await items(globex) == set()
    finally:
        for client in (acme, globex):
            await client.realtime.close()
