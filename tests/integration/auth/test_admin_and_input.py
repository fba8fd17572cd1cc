"""/auth/v1's admin API (service_role only), hostile input (always a 4xx in GoTrue's shape,
nothing stored), bad query parameters and unknown paths, settings and health."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import psycopg
import pytest

from tests.support.auth_api import (
    PASSWORD,
    admin_headers,
    assert_gotrue_error,
    keyed,
    new_email,
    signup,
    user_count,
)
from tests.support.http import call
from tools.gateway.testing import RunningGateway

pytestmark = pytest.mark.integration


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
