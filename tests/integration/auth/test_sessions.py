"""/auth/v1 of the local gateway (a development stand-in for GoTrue) over plain HTTP, against
the session's real PostgreSQL and the gateway as its own process: sign-up, the password and
refresh-token grants (rotation, reuse detection), the user and logout."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import jwt
import psycopg
import pytest

from tests.support.auth_api import (
    PASSWORD,
    WHOAMI,
    admin_headers,
    assert_gotrue_error,
    keyed,
    new_email,
    refresh,
    signup,
    user_count,
)
from tests.support.http import call
from tests.support.tenants import forged_tokens
from tools.gateway.testing import RunningGateway
from tools.local.keys import LOCAL_JWT_SECRET, user_token, verify

pytestmark = pytest.mark.integration


async def test_signup_answers_a_session_with_gotrue_claims_and_stores_a_bcrypt_hash(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    email = new_email()
    session = await signup(http, gateway, email.upper(), data={"name": "Ada"})
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == 3600
    assert len(session["refresh_token"]) >= 12
    user = session["user"]
    assert user["email"] == email
    assert user["user_metadata"] == {"name": "Ada"}
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"]}
    assert user["email_confirmed_at"]
    assert user["aud"] == "authenticated"
    claims = verify(session["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["iss"] == f"{gateway.url}/auth/v1"
    assert session["expires_at"] == claims["exp"] == claims["iat"] + 3600
    assert {k: claims[k] for k in ("aud", "role", "aal", "email", "phone", "is_anonymous")} == {
        "aud": "authenticated", "role": "authenticated", "aal": "aal1", "email": email,
        "phone": "", "is_anonymous": False}
    assert claims["amr"][0]["method"] == "password"
    assert claims["user_metadata"] == {"name": "Ada"}
    stored = db.execute("select encrypted_password, email_confirmed_at from auth.users"
                        " where id = %s", (UUID(user["id"]),)).fetchone()
    assert stored is not None
    assert stored[0].startswith(("$2a$10$", "$2b$10$"))
    assert stored[1] is not None
    session_row = db.execute("select user_id from auth.sessions where id = %s",
                             (UUID(claims["session_id"]),)).fetchone()
    assert session_row == (UUID(user["id"]),)


async def test_duplicate_signup_is_refused_in_both_of_gotrues_error_shapes(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    email = new_email()
    await signup(http, gateway, email)
    url = f"{gateway.url}/auth/v1/signup"
    body = {"email": email, "password": PASSWORD}
    status, answer, _ = await call(http, "POST", url, headers=keyed(), json=body)
    assert_gotrue_error(status, answer, 422, "user_already_exists")
    versioned = {**keyed(), "X-Supabase-Api-Version": "2024-01-01"}
    status, answer, headers = await call(http, "POST", url, headers=versioned, json=body)
    assert status == 422
    assert answer == {"code": "user_already_exists", "message": "User already registered"}
    assert headers["X-Supabase-Api-Version"] == "2024-01-01"
    assert user_count(db, email) == 1


async def test_password_grant_and_what_it_refuses(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    email = new_email()
    await signup(http, gateway, email)
    url = f"{gateway.url}/auth/v1/token?grant_type=password"
    status, body, _ = await call(http, "POST", url, headers=keyed(),
                                 json={"email": email, "password": PASSWORD})
    assert status == 200, body
    assert verify(body["access_token"])["email"] == email
    assert body["user"]["last_sign_in_at"]
    for wrong in ({"email": email, "password": "not the password"},
                  {"email": new_email(), "password": PASSWORD}):
        status, body, _ = await call(http, "POST", url, headers=keyed(), json=wrong)
        assert_gotrue_error(status, body, 400, "invalid_credentials")
    status, body, _ = await call(http, "POST", f"{gateway.url}/auth/v1/token?grant_type=magic",
                                 headers=keyed(), json={})
    assert_gotrue_error(status, body, 400, "unsupported_grant_type")


async def test_a_signed_in_token_works_for_rpc_with_the_tenant_an_admin_set(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    session = await signup(http, gateway)
    tenant = str(uuid4())
    status, body, _ = await call(http, "PUT",
                                 f"{gateway.url}/auth/v1/admin/users/{session['user']['id']}",
                                 headers=admin_headers(),
                                 json={"app_metadata": {"tenant_id": tenant}})
    assert status == 200, body
    assert body["app_metadata"] == {"provider": "email", "providers": ["email"],
                                    "tenant_id": tenant}
    status, signed, _ = await call(http, "POST",
                                   f"{gateway.url}/auth/v1/token?grant_type=password",
                                   headers=keyed(), json={"email": session["user"]["email"],
                                                          "password": PASSWORD})
    assert status == 200
    status, who, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/{WHOAMI}",
                                headers=keyed(signed["access_token"]), json={})
    assert status == 200, who
    assert who == {"uid": session["user"]["id"], "role": "authenticated", "tenant": tenant}


async def test_refresh_rotates_and_a_lost_answer_gets_the_active_token_back(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    first = (await signup(http, gateway))["refresh_token"]
    status, body = await refresh(http, gateway, first)
    assert status == 200, body
    second = body["refresh_token"]
    assert second != first
    assert verify(body["access_token"])["sub"] == body["user"]["id"]
    rows = db.execute("select token, revoked, parent from auth.refresh_tokens where token in"
                      " (%s, %s) order by id", (first, second)).fetchall()
    assert rows == [(first, True, None), (second, False, first)]
    # The client lost the answer and sends the parent of the active token again.
    status, again = await refresh(http, gateway, first)
    assert status == 200
    assert again["refresh_token"] == second
    status, body = await refresh(http, gateway, "no-such-token")
    assert_gotrue_error(status, body, 400, "refresh_token_not_found")
    status, body, _ = await call(http, "POST",
                                 f"{gateway.url}/auth/v1/token?grant_type=refresh_token",
                                 headers=keyed(), json={})
    assert_gotrue_error(status, body, 400, "validation_failed")


async def test_reuse_after_the_interval_revokes_the_whole_session(
    http: aiohttp.ClientSession, hooked: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    session = await signup(http, hooked)
    first = session["refresh_token"]
    _, body = await refresh(http, hooked, first)
    second = body["refresh_token"]
    _, body = await refresh(http, hooked, second)
    third, access = body["refresh_token"], body["access_token"]
    status, body = await refresh(http, hooked, first)  # neither active nor its parent
    assert_gotrue_error(status, body, 400, "refresh_token_already_used")
    status, body = await refresh(http, hooked, third)
    assert_gotrue_error(status, body, 400, "session_expired")
    status, body, _ = await call(http, "GET", f"{hooked.url}/auth/v1/user",
                                 headers=keyed(access))
    assert_gotrue_error(status, body, 403, "session_not_found")
    session_id = UUID(verify(access)["session_id"])
    live = db.execute("select count(*) from auth.refresh_tokens where session_id = %s"
                      " and not revoked", (session_id,)).fetchone()
    assert live == (0,)


async def test_user_endpoint_refuses_missing_forged_expired_and_keyless_tokens(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    session = await signup(http, gateway)
    url = f"{gateway.url}/auth/v1/user"
    status, body, _ = await call(http, "GET", url, headers=keyed(session["access_token"]))
    assert status == 200
    assert body["id"] == session["user"]["id"]
    status, body, _ = await call(http, "GET", url, headers={})
    assert_gotrue_error(status, body, 401, "no_authorization")
    claims = verify(session["access_token"])
    expired = jwt.encode({**claims, "exp": int(time.time()) - 60}, LOCAL_JWT_SECRET,
                         algorithm="HS256")
    for name, bad in {**forged_tokens(claims), "expired": expired}.items():
        status, body, _ = await call(http, "GET", url, headers={"Authorization": f"Bearer {bad}"})
        assert_gotrue_error(status, body, 403, "bad_jwt")
        assert name  # each kind of forgery is refused the same way
    status, body, _ = await call(http, "GET", url, headers=keyed())  # the anon key: no sub
    assert_gotrue_error(status, body, 403, "bad_jwt")
    stranger = user_token(uuid4(), uuid4())  # verifies, but no such user
    status, body, _ = await call(http, "GET", url, headers=keyed(stranger))
    assert_gotrue_error(status, body, 403, "user_not_found")


async def test_logout_scopes(http: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    email = new_email()
    first = await signup(http, gateway, email)
    url = f"{gateway.url}/auth/v1/token?grant_type=password"
    _, second, _ = await call(http, "POST", url, headers=keyed(),
                              json={"email": email, "password": PASSWORD})
    _, third, _ = await call(http, "POST", url, headers=keyed(),
                             json={"email": email, "password": PASSWORD})
    logout = f"{gateway.url}/auth/v1/logout"
    status, body, _ = await call(http, "POST", logout + "?scope=sideways",
                                 headers=keyed(first["access_token"]))
    assert_gotrue_error(status, body, 400, "validation_failed")
    status, body, _ = await call(http, "POST", logout + "?scope=local",
                                 headers=keyed(first["access_token"]))
    assert (status, body) == (204, None)
    status, body = await refresh(http, gateway, first["refresh_token"])
    assert_gotrue_error(status, body, 400, "refresh_token_not_found")
    status, _ = await refresh(http, gateway, second["refresh_token"])
    assert status == 200
    status, _, _ = await call(http, "POST", logout + "?scope=others",
                              headers=keyed(third["access_token"]))
    assert status == 204
    status, _ = await refresh(http, gateway, third["refresh_token"])
    assert status == 200
    status, body, _ = await call(http, "POST", logout, headers=keyed(third["access_token"]))
    assert status == 204
    status, body, _ = await call(http, "GET", f"{gateway.url}/auth/v1/user",
                                 headers=keyed(third["access_token"]))
    assert_gotrue_error(status, body, 403, "session_not_found")


async def test_a_user_updates_their_data_and_password_but_never_app_metadata(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any]
) -> None:
    session = await signup(http, gateway, data={"keep": 1, "drop": 2})
    url = f"{gateway.url}/auth/v1/user"
    headers = keyed(session["access_token"])
    status, body, _ = await call(http, "PUT", url, headers=headers,
                                 json={"app_metadata": {"tenant_id": str(uuid4())},
                                       "data": {"sneaky": True}})
    assert_gotrue_error(status, body, 403, "not_admin")
    row = db.execute("select raw_app_meta_data, raw_user_meta_data from auth.users"
                     " where id = %s", (UUID(session["user"]["id"]),)).fetchone()
    assert row == ({"provider": "email", "providers": ["email"]}, {"keep": 1, "drop": 2})
    status, body, _ = await call(http, "PUT", url, headers=headers,
                                 json={"data": {"drop": None, "new": "x"}})
    assert status == 200
    assert body["user_metadata"] == {"keep": 1, "new": "x"}
    status, body, _ = await call(http, "PUT", url, headers=headers, json={"password": PASSWORD})
    assert_gotrue_error(status, body, 422, "same_password")
    status, body, _ = await call(http, "PUT", url, headers=headers, json={"password": "abc"})
    assert_gotrue_error(status, body, 422, "weak_password")
    assert body["weak_password"] == {"reasons": ["length"]}
    status, body, _ = await call(http, "PUT", url, headers=headers,
                                 json={"password": "a new password"})
    assert status == 200
    status, body, _ = await call(http, "POST", f"{gateway.url}/auth/v1/token?grant_type=password",
                                 headers=keyed(), json={"email": session["user"]["email"],
                                                        "password": "a new password"})
    assert status == 200
