"""/rest/v1 of the local gateway against the session's real PostgreSQL, through the clients
users run (supabase-py, PostgREST's python client) and plain HTTP where a client hides
the detail (statuses, headers).

The gateway runs as its own process (`intent gateway`), once for this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import psycopg
import pytest
from postgrest.exceptions import APIError
from postgrest.types import CountMethod

from tests.support.http import SUPABASE_PY_DEPRECATIONS, auth, call, client_for
from tests.support.tenants import TwoTenants, b64url, forged_tokens
from tools.gateway.testing import RunningGateway, running_gateway
from tools.local.cluster import LocalCluster
from tools.local.keys import anon_key, service_role_key, user_token

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]

PROBE = "gateway_probe"


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with running_gateway(database_url) as running:
        yield running


@pytest.fixture(scope="module")
def probes(database_url: str) -> Iterator[None]:
    """Functions in public that show what a request runs as (dropped afterwards)."""
    names = ["", "_volatile", "_rows", "_values", "_void", "_text", "_sum", "_raise"]
    statements = f"""
    create function public.{PROBE}(label text default null) returns jsonb
    language sql stable as $$
      select jsonb_build_object(
        'user', current_user, 'claims', auth.jwt(), 'tenant', intent.current_tenant_id(),
        'method', current_setting('request.method', true),
        'path', current_setting('request.path', true),
        'headers', current_setting('request.headers', true)::jsonb,
        'read_only', current_setting('transaction_read_only'),
        'search_path', current_setting('search_path'), 'label', label)
    $$;
    create function public.{PROBE}_volatile() returns jsonb language sql volatile as $$
      select jsonb_build_object('read_only', current_setting('transaction_read_only'))
    $$;
    create function public.{PROBE}_rows(n integer) returns table(i integer, square integer)
    language sql immutable as $$ select g, g * g from generate_series(1, n) g $$;
    create function public.{PROBE}_values(n integer) returns setof integer
    language sql immutable as $$ select generate_series(1, n) $$;
    create function public.{PROBE}_void() returns void language sql volatile as $$ select $$;
    create function public.{PROBE}_text(value text) returns text
    language sql immutable as $$ select upper(value) $$;
    create function public.{PROBE}_sum(zeta text, variadic nums integer[]) returns text
    language sql immutable as $$ select zeta || (select sum(n) from unnest(nums) n) $$;
    create function public.{PROBE}_raise(state text) returns void language plpgsql as $$
    begin
      raise exception using errcode = state, message = 'probe refusal', detail = 'd',
                            hint = 'h';
    end $$;
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statements)
        for suffix in names:  # these only: the DB is shared with every other test
            conn.execute(f"grant execute on function public.{PROBE}{suffix} to anon, "
                         "authenticated, service_role")
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        for suffix in names:
            conn.execute(f"drop function if exists public.{PROBE}{suffix}")


@dataclass(frozen=True)
class World(TwoTenants):
    """Two tenants, a user in each, and stock rows of each (inserted as the superuser)."""

    items_a: list[UUID] = field(default_factory=lambda: [uuid4() for _ in range(4)])
    items_b: list[UUID] = field(default_factory=lambda: [uuid4()])

    @property
    def all_items(self) -> list[str]:
        return [str(i) for i in self.items_a + self.items_b]


@pytest.fixture(scope="module")
def world(pg_cluster: LocalCluster, database_url: str) -> Iterator[World]:
    made = World()
    rows: list[tuple[UUID, UUID, str | None, str, int]] = [
        (made.tenant_a, made.items_a[0], "A-1", "bolt", 10),
        (made.tenant_a, made.items_a[1], "A-2", "nut", 0),
        (made.tenant_a, made.items_a[2], "A-3", "washer", 25),
        (made.tenant_a, made.items_a[3], None, "unlabelled", 5),
        (made.tenant_b, made.items_b[0], "B-1", "secret of b", 99),
    ]
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        for tenant, item, sku, name, available in rows:
            conn.execute(
                "insert into public.stock_levels (tenant_id, item_id, sku, name, available,"
                " event_txid, event_position) values (%s, %s, %s, %s, %s, 1, 1)",
                (tenant, item, sku, name, available))
    yield made
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        tenants = [made.tenant_a, made.tenant_b]
        conn.execute("delete from public.stock_levels where tenant_id = any(%s)", (tenants,))
        # No pending command of ours may be left for a pump in a later test to claim.
        conn.execute("delete from intent.commands where tenant_id = any(%s)", (tenants,))


def data(response: Any) -> Any:
    """A client response's data, as the untyped JSON it is."""
    return response.data


def register(item_id: UUID | None = None) -> dict[str, Any]:
    return {"command_type": "inventory.register_item",
            "payload": {"item_id": str(item_id or uuid4()), "sku": "S-1", "name": "thing"}}


# -- rpc: the ingress through supabase-py -------------------------------------------------


STATUSES = {"pending", "dispatched", "processed", "rejected", "failed"}


async def test_a_user_submits_a_command_and_follows_it_with_supabase_py(
    gateway: RunningGateway, world: World
) -> None:
    # A pump may be running in this session (end-to-end tests): the status may move on.
    client = await client_for(gateway, world.token_a)
    command_id = uuid4()
    submitted = await client.rpc(
        "submit_command", {**register(), "command_id": str(command_id)}).execute()
    assert data(submitted)["command_id"] == str(command_id)
    assert data(submitted)["status"] in STATUSES

    again = await client.rpc(
        "submit_command", {**register(), "command_id": str(command_id)}).execute()
    assert data(again)["command_id"] == str(command_id)

    status = await client.rpc("command_status", {"command_id": str(command_id)}).execute()
    assert data(status)["status"] in STATUSES
    assert data(status)["command_type"] == "inventory.register_item"


async def test_another_tenants_user_cannot_see_the_command(
    gateway: RunningGateway, world: World
) -> None:
    owner = await client_for(gateway, world.token_a)
    submitted = await owner.rpc("submit_command", register()).execute()
    command_id = data(submitted)["command_id"]
    stranger = await client_for(gateway, world.token_b)
    seen = await stranger.rpc("command_status", {"command_id": command_id}).execute()
    assert data(seen) is None
    mine = await owner.rpc("command_status", {"command_id": command_id}).execute()
    assert data(mine)["command_id"] == command_id


async def test_anon_may_not_submit_commands(gateway: RunningGateway, http: aiohttp.ClientSession
                                            ) -> None:
    client = await client_for(gateway)
    with pytest.raises(APIError) as refused:
        await client.rpc("submit_command", register()).execute()
    assert refused.value.code == "42501"
    status, _, headers = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/submit_command",
                                    json=register(), headers={"apikey": anon_key()})
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"


async def test_ingress_refusals_keep_their_status_and_stable_hint(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/rest/v1/rpc/submit_command"
    unknown = {"command_type": "inventory.teleport", "payload": {"item_id": str(uuid4())}}
    status, body, _ = await call(http, "POST", url, json=unknown, headers=auth(world.token_a))
    assert (status, body["code"], body["hint"]) == (400, "PT400", "unknown_command_type")

    status, body, _ = await call(http, "POST", url, json=register(),
                                 headers=auth(service_role_key()))
    assert (status, body["code"], body["hint"]) == (401, "PT401", "no_tenant")

    client = await client_for(gateway, world.token_a)
    with pytest.raises(APIError) as refused:
        await client.rpc("submit_command", {"command_type": "inventory.register_item",
                                            "payload": {"item_id": "not-a-uuid"}}).execute()
    assert (refused.value.code, refused.value.hint) == ("PT400", "malformed")


async def test_unknown_functions_and_arguments_are_postgrests_404(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    headers = auth(world.token_a)
    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/no_such_function",
                                 json={}, headers=headers)
    assert (status, body["code"]) == (404, "PGRST202")
    assert "public.no_such_function" in body["message"]

    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/submit_command",
                                 json={**register(), "tenant_id": str(world.tenant_b)},
                                 headers=headers)
    assert (status, body["code"]) == (404, "PGRST202")
    assert "tenant_id" in body["message"]

    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/command_status",
                                 json={}, headers=headers)
    assert (status, body["code"]) == (404, "PGRST202")


async def test_argument_values_are_parsed_by_postgres_as_the_declared_type(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/command_status",
                                 json={"command_id": "nope'); drop table x; --"},
                                 headers=auth(world.token_a))
    assert (status, body["code"]) == (400, "22P02")
    assert "uuid" in body["message"]


async def test_malformed_bodies_are_refused(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/rest/v1/rpc/command_status"
    for payload in ("{not json", "[1, 2]"):
        status, body, _ = await call(http, "POST", url, data=payload,
                                     headers={**auth(world.token_a),
                                              "Content-Type": "application/json"})
        assert (status, body["code"]) == (400, "PGRST102")
    status, body, _ = await call(http, "PUT", url, json={}, headers=auth(world.token_a))
    assert (status, body["code"]) == (405, "PGRST101")


# -- rpc: what the call runs as ------------------------------------------------------------


async def test_a_call_runs_as_the_callers_role_with_claims_and_request_settings(
    gateway: RunningGateway, world: World, probes: None, http: aiohttp.ClientSession
) -> None:
    status, seen, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}",
                                 json={"label": "x"},
                                 headers={**auth(world.token_a), "X-Trace": "abc"})
    assert status == 200
    assert seen["user"] == "authenticated"
    assert seen["tenant"] == str(world.tenant_a)
    assert seen["claims"]["sub"] == str(world.user_a)
    assert (seen["method"], seen["path"], seen["label"]) == ("POST", f"/rpc/{PROBE}", "x")
    assert seen["headers"]["x-trace"] == "abc"
    assert seen["search_path"] == '"public", "extensions"'

    status, seen, _ = await call(http, "GET", f"{gateway.url}/rest/v1/rpc/{PROBE}")
    assert status == 200
    assert (seen["user"], seen["claims"], seen["tenant"]) == ("anon", {"role": "anon"}, None)
    assert seen["method"] == "GET"


async def test_settings_never_leak_from_one_request_to_the_next(
    gateway: RunningGateway, world: World, probes: None, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/rest/v1/rpc/{PROBE}"
    for _ in range(12):
        _, user, _ = await call(http, "POST", url, json={}, headers=auth(world.token_a))
        _, anonymous, _ = await call(http, "POST", url, json={},
                                     headers={"apikey": anon_key()})
        assert user["tenant"] == str(world.tenant_a)
        assert (anonymous["user"], anonymous["tenant"]) == ("anon", None)


async def test_get_and_stable_functions_run_read_only(
    gateway: RunningGateway, world: World, probes: None, http: aiohttp.ClientSession
) -> None:
    base = f"{gateway.url}/rest/v1/rpc"
    headers = auth(world.token_a)
    _, stable_post, _ = await call(http, "POST", f"{base}/{PROBE}", json={}, headers=headers)
    _, volatile_post, _ = await call(http, "POST", f"{base}/{PROBE}_volatile", json={},
                                     headers=headers)
    _, volatile_get, _ = await call(http, "GET", f"{base}/{PROBE}_volatile", headers=headers)
    assert (stable_post["read_only"], volatile_post["read_only"], volatile_get["read_only"]) \
        == ("on", "off", "on")

    status, body, _ = await call(http, "GET", f"{base}/submit_command",
                                 params={"command_type": "inventory.register_item",
                                         "payload": json.dumps(register()["payload"])},
                                 headers=headers)
    assert (status, body["code"]) == (405, "25006")


async def test_results_come_back_as_postgrest_shapes_them(
    gateway: RunningGateway, world: World, probes: None, http: aiohttp.ClientSession
) -> None:
    client = await client_for(gateway, world.token_a)
    rows = await client.rpc(f"{PROBE}_rows", {"n": 3}).execute()
    assert data(rows) == [{"i": 1, "square": 1}, {"i": 2, "square": 4}, {"i": 3, "square": 9}]
    values = await client.rpc(f"{PROBE}_values", {"n": 2}, get=True).execute()
    assert data(values) == [1, 2]
    text = await client.rpc(f"{PROBE}_text", {"value": "abc"}).execute()
    assert data(text) == "ABC"
    total = await client.rpc(f"{PROBE}_sum", {"zeta": "=", "nums": [1, 2, 3]}).execute()
    assert data(total) == "=6"

    status, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}_void",
                                 json={}, headers=auth(world.token_a))
    assert (status, body) == (204, None)

    status, one, _ = await call(
        http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}_rows", json={"n": 1},
        headers={**auth(world.token_a), "Accept": "application/vnd.pgrst.object+json"})
    assert (status, one) == (200, {"i": 1, "square": 1})
    status, body, _ = await call(
        http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}_rows", json={"n": 2},
        headers={**auth(world.token_a), "Accept": "application/vnd.pgrst.object+json"})
    assert (status, body["code"]) == (406, "PGRST116")


@pytest.mark.parametrize(("state", "status"), [("P0001", 400), ("23505", 409), ("PT402", 402),
                                               ("42501", 403), ("XX000", 500)])
async def test_raised_errors_keep_postgres_fields_and_get_postgrests_status(
    gateway: RunningGateway, world: World, probes: None, http: aiohttp.ClientSession,
    state: str, status: int,
) -> None:
    got, body, _ = await call(http, "POST", f"{gateway.url}/rest/v1/rpc/{PROBE}_raise",
                              json={"state": state}, headers=auth(world.token_a))
    assert got == status
    assert body == {"code": state, "message": "probe refusal", "details": "d", "hint": "h"}


# -- tables -------------------------------------------------------------------------------


async def test_a_tenants_user_reads_only_its_tenants_rows(
    gateway: RunningGateway, world: World
) -> None:
    reader_a = await client_for(gateway, world.token_a)
    seen_a = await reader_a.table("stock_levels").select("item_id,sku,available").in_(
        "item_id", world.all_items).execute()
    assert sorted(r["item_id"] for r in data(seen_a)) == sorted(str(i) for i in world.items_a)

    reader_b = await client_for(gateway, world.token_b)
    seen_b = await reader_b.table("stock_levels").select("*").in_(
        "item_id", world.all_items).execute()
    assert [r["item_id"] for r in data(seen_b)] == [str(world.items_b[0])]
    assert set(data(seen_b)[0]) >= {"tenant_id", "item_id", "sku", "name", "available"}

    asking_for_a = await reader_b.table("stock_levels").select("*").eq(
        "tenant_id", str(world.tenant_a)).execute()
    assert data(asking_for_a) == []


async def test_roles_without_a_grant_are_refused_anon_401_others_403(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    anonymous = await client_for(gateway)
    with pytest.raises(APIError) as refused:
        await anonymous.table("stock_levels").select("*").limit(1).execute()
    assert refused.value.code == "42501"
    url = f"{gateway.url}/rest/v1/stock_levels"
    status, _, _ = await call(http, "GET", url, headers={"apikey": anon_key()})
    assert status == 401
    # The read model grants SELECT to authenticated only: service_role is refused too.
    status, body, _ = await call(http, "GET", url, headers=auth(service_role_key()))
    assert (status, body["code"]) == (403, "42501")


async def test_filters_order_and_paging(gateway: RunningGateway, world: World) -> None:
    client = await client_for(gateway, world.token_a)
    mine = [str(i) for i in world.items_a]

    def stock() -> Any:
        return client.table("stock_levels").select("sku,available").in_("item_id", mine)

    assert [r["sku"] for r in data(await stock().gt("available", 5).order("sku").execute())] \
        == ["A-1", "A-3"]
    assert len(data(await stock().gte("available", 5).execute())) == 3
    assert [r["sku"] for r in data(await stock().lt("available", 5).execute())] == ["A-2"]
    assert len(data(await stock().lte("available", 5).execute())) == 2
    assert len(data(await stock().neq("sku", "A-1").execute())) == 2  # null is not <> 'A-1'
    assert [r["available"] for r in data(await stock().is_("sku", None).execute())] == [5]
    descending = await stock().order("sku", desc=True, nullsfirst=True).execute()
    assert [r["sku"] for r in data(descending)] == [None, "A-3", "A-2", "A-1"]
    page = await client.table("stock_levels").select("sku", count=CountMethod.exact).in_(
        "item_id", mine).order("available").limit(2).offset(1).execute()
    assert ([r["sku"] for r in data(page)], page.count) == ([None, "A-1"], 4)
    assert [r["sku"] for r in data(await stock().eq("name", "nut").execute())] == ["A-2"]


async def test_single_returns_one_object_or_postgrests_406(
    gateway: RunningGateway, world: World
) -> None:
    client = await client_for(gateway, world.token_a)
    one = await client.table("stock_levels").select("sku").eq(
        "item_id", str(world.items_a[0])).single().execute()
    assert data(one) == {"sku": "A-1"}
    with pytest.raises(APIError) as refused:
        await client.table("stock_levels").select("sku").eq(
            "item_id", str(world.items_b[0])).single().execute()
    assert refused.value.code == "PGRST116"
    assert refused.value.details == "The result contains 0 rows"


async def test_unsupported_queries_are_400_naming_the_feature_and_the_gateway_keeps_serving(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    client = await client_for(gateway, world.token_a)
    table = client.table("stock_levels")
    cases = [
        (table.select("sku").not_.eq("sku", "A-1"), "'not.'"),
        (table.select("sku").like("sku", "A%"), "'like'"),
        (table.select("sku, orders(*)"), "embedded resource"),
        (table.select("sku").or_("sku.eq.A-1,sku.eq.A-2"), "or="),
    ]
    for request, named in cases:
        with pytest.raises(APIError) as refused:
            await request.execute()
        assert refused.value.code == "PGRST100"
        assert named in str(refused.value.message)
    with pytest.raises(APIError) as unknown_column:
        await table.select("sku,password").execute()
    assert unknown_column.value.code == "42703"
    with pytest.raises(APIError) as unknown_table:
        await client.table("no_such_table").select("*").execute()
    assert unknown_table.value.code == "PGRST205"

    status, body, _ = await call(http, "GET", f"{gateway.url}/rest/v1/stock_levels",
                                 params={"sku": "ilike.*a*"}, headers=auth(world.token_a))
    assert status == 400
    assert "'ilike'" in body["message"]

    still = await table.select("sku").eq("item_id", str(world.items_a[1])).execute()
    assert data(still) == [{"sku": "A-2"}]


async def test_writes_to_tables_are_405(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    client = await client_for(gateway, world.token_a)
    with pytest.raises(APIError) as refused:
        await client.table("stock_levels").insert({"sku": "X"}).execute()
    assert refused.value.code == "PGRST117"
    assert "submit_command" in str(refused.value.hint)
    for method in ("PATCH", "DELETE", "PUT"):
        status, _, headers = await call(http, method, f"{gateway.url}/rest/v1/stock_levels",
                                        json={}, headers=auth(world.token_a))
        assert status == 405
        assert headers["Allow"] == "GET, HEAD, OPTIONS"


async def test_head_counts_without_a_body_and_other_schemas_are_refused(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/rest/v1/stock_levels"
    params = {"item_id": f"in.({','.join(str(i) for i in world.items_a)})"}
    async with http.head(url, params=params, headers={**auth(world.token_a),
                                                      "Prefer": "count=exact"}) as response:
        assert response.status == 200
        assert response.headers["Content-Range"] == "0-3/4"
        assert await response.read() == b""
    status, body, _ = await call(http, "GET", url, headers={**auth(world.token_a),
                                                          "Accept-Profile": "intent"})
    assert (status, body["code"]) == (406, "PGRST106")
    async with http.options(url, headers={"Origin": "http://localhost:3000",
                                          "Access-Control-Request-Method": "GET"}) as response:
        assert response.status == 200
        assert "apikey" in response.headers["Access-Control-Allow-Headers"]


# -- tokens -------------------------------------------------------------------------------


def _forged_tokens(world: World) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": str(world.user_a), "role": "authenticated", "aud": "authenticated",
              "iat": now, "exp": now + 600,
              "app_metadata": {"tenant_id": str(world.tenant_a)}}
    header, _, signature = world.token_b.split(".")
    return {**forged_tokens(claims), "tenant swapped": f"{header}.{b64url(claims)}.{signature}"}


async def test_bad_tokens_are_401_on_every_rest_path(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    expired = user_token(world.tenant_a, world.user_a, expires_in=-10)
    requests = [
        ("GET", f"{gateway.url}/rest/v1/stock_levels?select=sku", None),
        ("POST", f"{gateway.url}/rest/v1/rpc/submit_command", register()),
        ("GET", f"{gateway.url}/rest/v1/rpc/command_status?command_id={uuid4()}", None),
    ]
    for method, url, body in requests:
        for name, token in _forged_tokens(world).items():
            status, answer, headers = await call(http, method, url, json=body,
                                                 headers=auth(token))
            assert (status, answer["code"]) == (401, "PGRST301"), (name, url)
            assert headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
        status, answer, _ = await call(http, method, url, json=body, headers=auth(expired))
        assert (status, answer["code"], answer["message"]) == (401, "PGRST303", "JWT expired")
        # A forged apikey is refused even beside a valid user token.
        status, answer, _ = await call(http, method, url, json=body,
                                       headers=auth(world.token_a, apikey="forged"))
        assert status == 401


async def test_each_request_is_logged_as_one_json_line(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    marker = uuid4().hex
    await call(http, "GET", f"{gateway.url}/rest/v1/stock_levels",
               params={"sku": f"eq.{marker}", "apikey": anon_key()},
               headers=auth(world.token_a))
    lines = [e for e in gateway.log_events()
             if e.get("event") == "request" and marker in e.get("query", "")]
    assert len(lines) == 1
    line = lines[0]
    assert (line["method"], line["path"], line["status"], line["role"]) == (
        "GET", "/rest/v1/stock_levels", 200, "authenticated")
    assert "apikey=%2A%2A%2A" in line["query"]
    assert isinstance(line["ms"], float)


async def test_an_apikey_query_parameter_counts_as_the_apikey(
    gateway: RunningGateway, world: World, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/rest/v1/rpc/command_status"
    status, _, _ = await call(http, "GET", url, params={"command_id": str(uuid4()),
                                                        "apikey": "forged"})
    assert status == 401
    status, body, _ = await call(http, "GET", url, params={"command_id": str(uuid4()),
                                                           "apikey": world.token_a})
    assert (status, body) == (200, None)


async def test_paths_the_gateway_does_not_serve_are_json_404s(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await call(http, "GET", f"{gateway.url}/rest/v1/")
    assert (status, body["code"]) == (404, "PGRST125")
    status, body, _ = await call(http, "POST", f"{gateway.url}/storage/v1/object/b/x")
    assert status == 404
    assert "not served by the local gateway" in body["message"]
    # /auth/v1 is served (tests/integration/auth/); its unknown paths are
    # GoTrue's 404.
    status, body, _ = await call(http, "POST", f"{gateway.url}/auth/v1/otp/nothing")
    assert (status, body["error_code"]) == (404, "not_found")
