"""/auth/v1 of the local gateway (a development stand-in for GoTrue) over plain HTTP, against
the session's real PostgreSQL and the gateway as its own process: sign-up, the password and
refresh-token grants (rotation, reuse detection), the user, logout, the admin API, the custom
access token hook, and hostile input (always a 4xx in GoTrue's shape, nothing stored).

Two gateways: one with GoTrue's defaults (no config.toml), one with a config.toml of this
module's that enables a test-defined hook and a reuse interval of 0 seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import jwt
import psycopg
import pytest

from tests.support.http import call
from tests.support.tenants import forged_tokens
from tools.gateway.testing import RunningGateway, running_gateway
from tools.local.keys import LOCAL_JWT_SECRET, anon_key, service_role_key, user_token, verify

pytestmark = pytest.mark.integration

HOOK = "intent_test_auth_hook"
WHOAMI = "intent_test_auth_whoami"
PASSWORD = "correct horse battery"
HOOK_SQL = f"""
create or replace function public.{HOOK}(event jsonb) returns jsonb
language plpgsql stable as $$
declare
  claims jsonb := event -> 'claims';
  meta jsonb := coalesce(claims -> 'user_metadata', '{{}}');
begin
  if meta ? 'hook_refuses' then
    return jsonb_build_object('error', jsonb_build_object('http_code', 403,
                              'message', 'the hook says no'));
  end if;
  if meta ? 'hook_drops' then
    return jsonb_build_object('claims', claims - 'session_id');
  end if;
  claims := jsonb_set(claims, '{{app_metadata,hooked}}', to_jsonb(event ->> 'user_id'));
  claims := jsonb_set(claims, '{{hook_method}}', to_jsonb(event ->> 'authentication_method'));
  return jsonb_build_object('claims', claims);
end $$;
revoke execute on function public.{HOOK}(jsonb) from public, anon, authenticated;
grant execute on function public.{HOOK}(jsonb) to supabase_auth_admin;
create or replace function public.{WHOAMI}() returns jsonb language sql stable as $$
  select jsonb_build_object('uid', auth.uid(), 'role', auth.role(),
                            'tenant', intent.current_tenant_id())
$$;
grant execute on function public.{WHOAMI}() to anon, authenticated, service_role;
"""


@pytest.fixture(scope="module")
def functions(database_url: str) -> Iterator[None]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(HOOK_SQL)
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"drop function if exists public.{HOOK}(jsonb);"
                     f" drop function if exists public.{WHOAMI}()")


def assert_no_server_errors(gateway: RunningGateway, *, hook_failures: int = 0) -> None:
    """Whatever the module sent, the gateway never failed (no traceback, no database error,
    no 5xx) but for the broken hook's output, which GoTrue answers with a 500 too."""
    events = gateway.final_events
    assert any(e.get("event") == "request" for e in events)
    failures = [e for e in events if e.get("event") in {"unhandled_error", "auth_database_error"}]
    assert failures == []
    server_errors = [e for e in events if e.get("event") == "request" and e["status"] >= 500]
    assert len(server_errors) <= hook_failures, server_errors


@pytest.fixture(scope="module")
def gateway(database_url: str, functions: None) -> Iterator[RunningGateway]:
    with running_gateway(database_url) as running:
        yield running
    assert_no_server_errors(running)


@pytest.fixture(scope="module")
def hooked(database_url: str, functions: None, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RunningGateway]:
    """A gateway whose config.toml enables the test's hook and has no reuse interval."""
    config = Path(tmp_path_factory.mktemp("auth")) / "config.toml"
    config.write_text(
        "[auth]\nrefresh_token_reuse_interval = 0\njwt_expiry = 600\n"
        "[auth.hook.custom_access_token]\nenabled = true\n"
        f'uri = "pg-functions://postgres/public/{HOOK}"\n')
    with running_gateway(database_url, functions_config=config) as running:
        yield running
    assert_no_server_errors(running, hook_failures=1)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def keyed(token: str | None = None) -> dict[str, str]:
    """The headers supabase clients send: the anon key, and a bearer (the anon key unless
    a user's token is given)."""
    return {"apikey": anon_key(), "Authorization": f"Bearer {token or anon_key()}"}


def admin_headers() -> dict[str, str]:
    return {"apikey": service_role_key(), "Authorization": f"Bearer {service_role_key()}"}


def new_email() -> str:
    return f"user-{uuid4().hex[:12]}@example.com"


async def signup(http: aiohttp.ClientSession, gw: RunningGateway, email: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    status, body, _ = await call(http, "POST", f"{gw.url}/auth/v1/signup", headers=keyed(),
                                 json={"email": email or new_email(), "password": PASSWORD,
                                       **extra})
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def refresh(http: aiohttp.ClientSession, gw: RunningGateway, token: str
                  ) -> tuple[int, Any]:
    status, body, _ = await call(http, "POST", f"{gw.url}/auth/v1/token?grant_type=refresh_token",
                                 headers=keyed(), json={"refresh_token": token})
    return status, body


def assert_gotrue_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    extra = {"weak_password"} if code == "weak_password" else set()
    assert set(body) == {"code", "error_code", "msg", *extra}, body
    assert (body["code"], body["error_code"]) == (expected_status, code), body
    assert isinstance(body["msg"], str)
    assert body["msg"]


def user_count(db: psycopg.Connection[Any], email: str) -> int:
    row = db.execute("select count(*) from auth.users where email = %s", (email,)).fetchone()
    return int(row[0]) if row else 0


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


async def test_the_admin_api_needs_service_role(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    session = await signup(http, gateway)
    base = f"{gateway.url}/auth/v1/admin/users"
    for headers, status_code, code in ((keyed(session["access_token"]), 403, "not_admin"),
                                       (keyed(), 403, "not_admin"),
                                       ({}, 401, "no_authorization")):
        for method, url in (("GET", base), ("POST", base),
                            ("GET", f"{base}/{session['user']['id']}"),
                            ("PUT", f"{base}/{session['user']['id']}"),
                            ("DELETE", f"{base}/{session['user']['id']}")):
            status, body, _ = await call(http, method, url, headers=headers,
                                         json={"email": new_email(), "app_metadata": {"x": 1}})
            assert_gotrue_error(status, body, status_code, code)


async def test_admin_creates_lists_gets_updates_bans_and_deletes_users(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    base = f"{gateway.url}/auth/v1/admin/users"
    email = new_email()
    status, user, _ = await call(http, "POST", base, headers=admin_headers(), json={
        "email": email, "password": PASSWORD, "email_confirm": True,
        "user_metadata": {"name": "Bo"}, "app_metadata": {"tenant_id": "t"}})
    assert status == 200, user
    assert user["app_metadata"] == {"provider": "email", "providers": ["email"],
                                    "tenant_id": "t"}
    status, body, _ = await call(http, "POST", base, headers=admin_headers(),
                                 json={"email": email})
    assert_gotrue_error(status, body, 422, "email_exists")
    status, listed, headers = await call(http, "GET", f"{base}?page=1&per_page=2",
                                         headers=admin_headers())
    assert status == 200
    assert listed["aud"] == "authenticated"
    assert len(listed["users"]) <= 2
    assert int(headers["X-Total-Count"]) >= 1
    assert 'rel="last"' in headers["Link"]
    status, got, _ = await call(http, "GET", f"{base}/{user['id']}", headers=admin_headers())
    assert status == 200
    assert got["email"] == email
    status, got, _ = await call(http, "PUT", f"{base}/{user['id']}", headers=admin_headers(),
                                json={"app_metadata": {"role": "owner"}, "ban_duration": "1h"})
    assert status == 200
    assert got["app_metadata"]["tenant_id"] == "t"
    assert got["app_metadata"]["role"] == "owner"
    assert got["banned_until"]
    status, body, _ = await call(http, "POST", f"{gateway.url}/auth/v1/token?grant_type=password",
                                 headers=keyed(), json={"email": email, "password": PASSWORD})
    assert_gotrue_error(status, body, 400, "user_banned")
    status, body, _ = await call(http, "DELETE", f"{base}/{user['id']}", headers=admin_headers())
    assert (status, body) == (200, {})
    status, body, _ = await call(http, "GET", f"{base}/{user['id']}", headers=admin_headers())
    assert_gotrue_error(status, body, 404, "user_not_found")
    status, body, _ = await call(http, "GET", f"{base}/not-a-uuid", headers=admin_headers())
    assert_gotrue_error(status, body, 404, "validation_failed")


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_BODIES: dict[str, tuple[bytes | Any, int]] = {
    "not json": (b"{nope", 400),
    "an array": ([1, 2], 400),
    "a string": ("just a string", 400),
    "email a number": ({"email": 5, "password": PASSWORD}, 400),
    "password a list": ({"email": "EMAIL", "password": ["x"]}, 400),
    "data a string": ({"email": "EMAIL", "password": PASSWORD, "data": "x",
                       "user_metadata": "x"}, 400),
    "missing email": ({"password": PASSWORD}, 400),
    "email too long": ({"email": "a" * 250 + "@example.com", "password": PASSWORD}, 400),
    "email invalid": ({"email": "not an email", "password": PASSWORD}, 400),
    "email with NUL": ({"email": "EMAIL\u0000", "password": PASSWORD}, 400),
    "password with a lone surrogate": ({"email": "EMAIL", "password": "abcdefg\ud800"}, 400),
    "no body": (b"", 400),
    "password too short": ({"email": "EMAIL", "password": "abc"}, 422),
    "password over 72 bytes": ({"email": "EMAIL", "password": "é" * 40}, 400),
    "metadata too deep": ({"email": "EMAIL", "password": PASSWORD, "data": _nested(40),
                           "user_metadata": _nested(40)}, 400),
    "metadata too large": ({"email": "EMAIL", "password": PASSWORD,
                            "data": {"x": "y" * 20_000}, "user_metadata": {"x": "y" * 20_000}},
                           400),
    "metadata with NUL": ({"email": "EMAIL", "password": PASSWORD, "data": {"k": "\u0000"},
                           "user_metadata": {"k\u0000": 1}}, 400),
    "huge body": ({"email": "EMAIL", "password": PASSWORD, "pad": "x" * 200_000}, 413),
    "json nested past the gateway's limit": (b'{"data":' + b"[" * 300 + b"]" * 300 + b"}", 400),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
@pytest.mark.parametrize("endpoint", ["signup", "password", "admin create"])
async def test_bad_input_is_a_gotrue_4xx_and_stores_nothing(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any],
    endpoint: str, case: str,
) -> None:
    email = new_email()
    body, expected = BAD_BODIES[case]
    if endpoint == "password" and case.startswith(("password too short", "email too long",
                                                   "email invalid", "metadata")):
        expected = 400  # a sign-in checks nothing but the credentials: they do not match
    if endpoint == "admin create" and case == "missing email":
        expected = 400
    raw = body if isinstance(body, bytes) else json.dumps(body).replace("EMAIL", email).encode()
    path = {"signup": "/auth/v1/signup", "password": "/auth/v1/token?grant_type=password",
            "admin create": "/auth/v1/admin/users"}[endpoint]
    headers = {**(admin_headers() if endpoint == "admin create" else keyed()),
               "Content-Type": "application/json"}
    status, answer, _ = await call(http, "POST", gateway.url + path, data=raw, headers=headers)
    assert 400 <= status < 500, (status, answer)
    if endpoint != "password" or expected != 400:
        assert status == expected, answer
    assert set(answer) >= {"code", "error_code", "msg"}, answer
    assert answer["code"] == status, answer
    assert user_count(db, email) == 0


@pytest.mark.parametrize("case", ["not json", "an array", "data a string", "metadata too deep",
                                  "metadata too large", "metadata with NUL", "huge body",
                                  "password a list", "email a number"])
async def test_bad_input_to_the_user_and_admin_updates_changes_nothing(
    http: aiohttp.ClientSession, gateway: RunningGateway, db: psycopg.Connection[Any], case: str
) -> None:
    session = await signup(http, gateway)
    user_id = session["user"]["id"]
    before = db.execute("select raw_user_meta_data, raw_app_meta_data, email,"
                        " encrypted_password from auth.users where id = %s",
                        (UUID(user_id),)).fetchone()
    body, _ = BAD_BODIES[case]
    raw = body if isinstance(body, bytes) else json.dumps(body).replace("EMAIL", new_email())
    for method, url, headers in (
        ("PUT", f"{gateway.url}/auth/v1/user", keyed(session["access_token"])),
        ("PUT", f"{gateway.url}/auth/v1/admin/users/{user_id}", admin_headers()),
        ("POST", f"{gateway.url}/auth/v1/token?grant_type=refresh_token", keyed()),
    ):
        status, answer, _ = await call(http, method, url, data=raw,
                                       headers={**headers, "Content-Type": "application/json"})
        assert 400 <= status < 500, (url, status, answer)
        assert answer["code"] == status, answer
        assert answer["error_code"], answer
    after = db.execute("select raw_user_meta_data, raw_app_meta_data, email,"
                       " encrypted_password from auth.users where id = %s",
                       (UUID(user_id),)).fetchone()
    assert after == before


async def test_bad_query_parameters_and_unknown_paths(
    http: aiohttp.ClientSession, gateway: RunningGateway
) -> None:
    for query in ("page=0", "per_page=-1", "page=x", "page=99999999999999"):
        status, body, _ = await call(http, "GET", f"{gateway.url}/auth/v1/admin/users?{query}",
                                     headers=admin_headers())
        assert_gotrue_error(status, body, 400, "validation_failed")
    status, body, _ = await call(http, "GET", f"{gateway.url}/auth/v1/nothing/here")
    assert_gotrue_error(status, body, 404, "not_found")
    status, body, _ = await call(http, "PUT", f"{gateway.url}/auth/v1/admin/users/"
                                 f"{uuid4()}", headers=admin_headers(),
                                 json={"ban_duration": "forever"})
    assert_gotrue_error(status, body, 404, "user_not_found")


async def test_settings_and_health(http: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    status, body, headers = await call(http, "GET", f"{gateway.url}/auth/v1/settings",
                                       headers=keyed())
    assert status == 200
    assert body["external"]["email"] is True
    assert body["mailer_autoconfirm"] is True
    assert body["disable_signup"] is False
    assert headers["Access-Control-Allow-Origin"] == "*"
    status, body, _ = await call(http, "GET", f"{gateway.url}/auth/v1/health")
    assert status == 200
    assert body["name"] == "GoTrue"
    assert "stand-in" in body["description"]
    status, _, headers = await call(http, "OPTIONS", f"{gateway.url}/auth/v1/token",
                                    headers={"Origin": "http://localhost:3000",
                                             "Access-Control-Request-Method": "POST"})
    assert status == 204
    assert "apikey" in headers["Access-Control-Allow-Headers"]


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
