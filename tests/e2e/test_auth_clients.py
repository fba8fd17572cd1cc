"""Sign-in through the local gateway's /auth/v1 (a development stand-in for GoTrue) with the
official clients, unchanged: supabase-py (sync) and supabase-js on Node. Each signs up,
signs in, reads the user, creates a tenant (a command: the token has none yet), refreshes,
and the refreshed token, carrying the tenant from the access-token hook, runs a command
through the pipeline; then signs out. An admin setting app_metadata.tenant_id gives nothing:
the hook takes the tenant from memberships only."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest
from supabase import Client, ClientOptions, create_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.node import run_script
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key, service_role_key, verify
from tools.settings import REPO_ROOT

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

SCRIPT = REPO_ROOT / "tests" / "e2e" / "js" / "auth.mjs"
PASSWORD = "a long enough secret"


def client(gateway: RunningGateway, key: str) -> Client:
    return create_client(gateway.url, key, ClientOptions(auto_refresh_token=False,
                                                         persist_session=False))


def python_story(gateway: RunningGateway) -> dict[str, Any]:
    """The supabase-py steps (synchronous), with what each saw."""
    seen: dict[str, Any] = {}
    email = f"py-{uuid4().hex[:10]}@example.com"
    supabase, admin = client(gateway, anon_key()), client(gateway, service_role_key())
    events: list[str] = []
    supabase.auth.on_auth_state_change(lambda event, _session: events.append(event))
    signed_up = supabase.auth.sign_up({"email": email, "password": PASSWORD,
                                       "options": {"data": {"name": "Py"}}})
    assert signed_up.user is not None
    assert signed_up.session is not None
    seen["metadata"] = signed_up.user.user_metadata
    with pytest.raises(AuthApiError) as refused:
        supabase.auth.sign_up({"email": email, "password": PASSWORD})
    assert refused.value.code == "user_already_exists"
    with pytest.raises(AuthApiError) as refused:
        supabase.auth.sign_in_with_password({"email": email, "password": "wrong-wrong"})
    assert refused.value.code == "invalid_credentials"
    with pytest.raises(AuthWeakPasswordError):
        supabase.auth.sign_up({"email": f"weak-{email}", "password": "abc"})

    created = admin.auth.admin.create_user({"email": f"admin-{email}", "password": PASSWORD,
                                            "email_confirm": True})
    seen["listed"] = any(u.id == created.user.id for u in admin.auth.admin.list_users(
        page=1, per_page=1000))
    tenant = str(uuid4())
    admin.auth.admin.update_user_by_id(signed_up.user.id, {"app_metadata": {"tenant_id": tenant}})
    admin.auth.admin.delete_user(created.user.id)

    signed_in = supabase.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None
    seen["first_tenant"] = verify(signed_in.session.access_token)["app_metadata"].get(
        "tenant_id")
    user = supabase.auth.get_user()
    seen["user_id_matches"] = user is not None and user.user.id == signed_up.user.id
    made = supabase.functions.invoke("command", {"responseType": "json", "body": {
        "type": "tenancy.create_tenant", "wait": True,
        "payload": {"tenant_id": tenant, "name": "Py's"}}})
    assert isinstance(made, dict)
    seen["create"] = made["status"]
    refreshed = supabase.auth.refresh_session()
    assert refreshed.session is not None
    seen["rotated"] = refreshed.session.refresh_token != signed_in.session.refresh_token
    claims = verify(refreshed.session.access_token)["app_metadata"]
    seen["tenant_claim"], seen["tenant_role"] = claims["tenant_id"], claims["tenant_role"]
    seen["tenant"] = tenant
    answer = supabase.functions.invoke("command", {"responseType": "json", "body": {
        "type": "inventory.register_item", "wait": True,
        "payload": {"item_id": str(uuid4()), "sku": "AUTH-PY", "name": "Signed in"}}})
    assert isinstance(answer, dict)
    seen["command"] = answer["status"]
    old_refresh = refreshed.session.refresh_token
    supabase.auth.sign_out()
    with pytest.raises(AuthApiError) as refused:
        supabase.auth.refresh_session(old_refresh)
    seen["after_sign_out"] = refused.value.code
    seen["events"] = events
    return seen


async def test_supabase_py_signs_up_in_refreshes_and_out(
    gateway: RunningGateway, pipeline: None
) -> None:
    seen = await asyncio.to_thread(python_story, gateway)
    assert seen["metadata"] == {"name": "Py"}
    assert seen["listed"]
    assert seen["user_id_matches"]
    assert seen["rotated"]
    assert seen["first_tenant"] is None  # the admin's app_metadata.tenant_id gave nothing
    assert seen["create"] == "processed"
    assert (seen["tenant_claim"], seen["tenant_role"]) == (seen["tenant"], "owner")
    assert seen["command"] == "processed"
    assert seen["after_sign_out"] == "refresh_token_not_found"
    assert {"SIGNED_IN", "TOKEN_REFRESHED", "SIGNED_OUT"} <= set(seen["events"])


async def test_supabase_js_signs_up_in_refreshes_and_out(
    gateway: RunningGateway, pipeline: None
) -> None:
    tenant = str(uuid4())
    seen = await run_script(SCRIPT, {
        "url": gateway.url, "anonKey": anon_key(), "serviceKey": service_role_key(),
        "email": f"js-{uuid4().hex[:10]}@example.com", "password": PASSWORD,
        "tenant": tenant, "item": str(uuid4()),
    })
    assert seen["signUp"] == {"error": None, "email": seen["signUp"]["email"],
                              "metadata": {"name": "Js"}, "hasSession": True}
    assert seen["duplicate"] == {"code": "user_already_exists", "status": 422}
    assert seen["weak"]["code"] == "weak_password"
    assert seen["weak"]["reasons"] == ["length"]
    assert seen["wrongPassword"] == {"code": "invalid_credentials", "status": 400}
    assert seen["adminUpdate"] == {"error": None}
    assert seen["signIn"]["error"] is None
    assert seen["signIn"]["tenant"] is None  # the hook ignores an admin's tenant_id
    assert seen["create"] == {"status": "processed", "error": None}
    assert seen["getUser"]["error"] is None
    assert seen["getUser"]["id"] == seen["signIn"]["sub"]
    assert seen["refresh"] == {"error": None, "rotated": True, "tenant": tenant,
                               "role": "owner"}
    assert seen["rpc"] == {"status": 200, "error": None}
    assert seen["invoke"] == {"status": "processed", "error": None}
    assert seen["signOut"] == {"error": None}
    assert seen["afterSignOut"]["code"] == "refresh_token_not_found"
    assert seen["listed"] is True
    assert seen["deleted"] is None
    events = seen["events"]
    assert {"SIGNED_IN", "TOKEN_REFRESHED", "SIGNED_OUT"} <= set(events), events
    assert events.index("SIGNED_IN") < events.index("TOKEN_REFRESHED") < events.index(
        "SIGNED_OUT")


async def test_supabase_js_realtime_keeps_delivering_across_token_refreshes(
    gateway: RunningGateway, pipeline: None
) -> None:
    tenant, items = str(uuid4()), [str(uuid4()) for _ in range(3)]
    seen = await run_script(REPO_ROOT / "tests" / "e2e" / "js" / "auth_realtime.mjs", {
        "url": gateway.url, "anonKey": anon_key(), "email": f"live-{uuid4().hex[:10]}@x.io",
        "password": PASSWORD, "tenant": tenant, "items": items,
    })
    assert (seen["created"], seen["tenant"], seen["joined"]) == ("processed", tenant,
                                                                 "SUBSCRIBED")
    for round_ in range(3):
        assert seen[f"sent{round_}"] == "processed"
        assert seen[f"arrived{round_}"] is True, seen
    assert (seen["refresh1"], seen["refresh2"]) == ("ok", "ok")
    assert (seen["realtimeToken1"], seen["realtimeToken2"]) == (True, True), seen
    assert seen["received"] == items
    assert seen["channelState"] == "joined"
