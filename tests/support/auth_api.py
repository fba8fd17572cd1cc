"""What the /auth/v1 tests share: a test-defined access-token hook (and a whoami RPC), the
headers supabase clients send, sign-up and refresh calls, and GoTrue's error shape."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import aiohttp
import psycopg

from tests.support.http import call
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key, service_role_key

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


def assert_no_server_errors(gateway: RunningGateway, *, hook_failures: int = 0) -> None:
    """Whatever the module sent, the gateway never failed (no traceback, no database error,
    no 5xx) but for the broken hook's output, which GoTrue answers with a 500 too."""
    events = gateway.final_events
    assert any(e.get("event") == "request" for e in events)
    failures = [e for e in events if e.get("event") in {"unhandled_error", "auth_database_error"}]
    assert failures == []
    server_errors = [e for e in events if e.get("event") == "request" and e["status"] >= 500]
    assert len(server_errors) <= hook_failures, server_errors


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
