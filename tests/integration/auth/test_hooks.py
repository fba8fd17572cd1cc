"""The custom access token hook as /auth/v1 applies it: it shapes every issued token; a
refusal or broken output stores no user; clients cannot call the hook function."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import aiohttp
import psycopg
import pytest

from tests.support.auth_api import (
    HOOK,
    PASSWORD,
    assert_gotrue_error,
    keyed,
    new_email,
    refresh,
    signup,
    user_count,
)
from tests.support.http import call
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key, user_token, verify

pytestmark = pytest.mark.integration


async def test_the_hook_shapes_every_issued_token(
    http: aiohttp.ClientSession, hooked: RunningGateway
) -> None:
    session = await signup(http, hooked)
    claims = verify(session["access_token"])
    assert claims["app_metadata"]["hooked"] == session["user"]["id"]
    assert claims["hook_method"] == "password"
    assert session["user"]["app_metadata"] == {"provider": "email", "providers": ["email"]}
    status, body = await refresh(http, hooked, session["refresh_token"])
    assert status == 200
    assert verify(body["access_token"])["hook_method"] == "token_refresh"


async def test_a_hook_refusal_or_broken_output_stores_no_user(
    http: aiohttp.ClientSession, hooked: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    for flag, status_code, code in (("hook_refuses", 403, "hook_error"),
                                    ("hook_drops", 500, "unexpected_failure")):
        email = new_email()
        status, body, _ = await call(http, "POST", f"{hooked.url}/auth/v1/signup",
                                     headers=keyed(), json={"email": email,
                                                            "password": PASSWORD,
                                                            "data": {flag: True}})
        assert_gotrue_error(status, body, status_code, code)
        assert user_count(db, email) == 0


@pytest.mark.parametrize("who", ["anon", "authenticated"])
async def test_the_hook_function_cannot_be_called_by_clients(
    http: aiohttp.ClientSession, gateway: RunningGateway, who: str
) -> None:
    token = anon_key() if who == "anon" else user_token(uuid4(), uuid4())
    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/{HOOK}",
                                 headers=keyed(token), json={"event": {"claims": {}}})
    assert status in {401, 403}, body
    assert body["code"] == "42501"
