"""/functions/v1 of the local gateway: discovery, verify_jwt, faithful forwarding to real
Deno processes, restarts of a function that died, and no process left behind.

The fixture functions are in tests/fixtures/functions (echo answers with what it
received; crash exits on /crash/exit). The gateway runs as its own process, once for this
module; the shutdown test starts one of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from supabase import AsyncClientOptions, acreate_client
from supabase_functions.errors import FunctionsHttpError

from tests.support import tenants
from tests.support.gateway import fixture_functions_gateway
from tests.support.http import SUPABASE_PY_DEPRECATIONS, auth, call
from tests.support.processes import alive
from tests.support.tenants import any_user, forged_tokens
from tools.gateway.config import GatewayError
from tools.gateway.functions import discover_functions, read_functions_settings
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key, service_role_key

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]



# -- discovery (no processes) -------------------------------------------------------------


def _function(root: Path, slug: str, *, deno_json: bool = False) -> None:
    (root / slug).mkdir(parents=True)
    (root / slug / "index.ts").write_text("Deno.serve(() => new Response('ok'));\n")
    if deno_json:
        (root / slug / "deno.json").write_text("{}\n")


def test_discovery_takes_valid_slugs_with_an_index_and_skips_shared(tmp_path: Path) -> None:
    for slug in ("hello", "with-dash_2", "_shared", "1starts-with-digit", "has.dot"):
        _function(tmp_path, slug)
    (tmp_path / "no-index").mkdir()
    (tmp_path / "no-index" / "main.ts").write_text("")
    (tmp_path / "README.md").write_text("not a function")
    _function(tmp_path, "configured", deno_json=True)
    found = discover_functions(tmp_path)
    assert sorted(found) == ["configured", "hello", "with-dash_2"]
    assert found["configured"].deno_config == (tmp_path / "configured" / "deno.json").resolve()
    assert found["hello"].deno_config is None
    assert all(spec.verify_jwt for spec in found.values())


def test_config_toml_sets_verify_jwt_and_can_disable_a_function(tmp_path: Path) -> None:
    for slug in ("open", "closed", "off"):
        _function(tmp_path, slug)
    config = tmp_path / "config.toml"
    config.write_text('project_id = "x"\n[functions.open]\nverify_jwt = false\n'
                      "[functions.off]\nenabled = false\n")
    found = discover_functions(tmp_path, config)
    assert sorted(found) == ["closed", "open"]
    assert (found["open"].verify_jwt, found["closed"].verify_jwt) == (False, True)


def test_a_malformed_config_toml_is_an_environment_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[functions.x]\nverify_jwt = 'no'\n")
    with pytest.raises(GatewayError, match="verify_jwt must be true or false"):
        read_functions_settings(config)
    config.write_text("[functions\n")
    with pytest.raises(GatewayError, match="not valid TOML"):
        read_functions_settings(config)


def test_a_missing_functions_folder_has_no_functions(tmp_path: Path) -> None:
    assert discover_functions(tmp_path / "absent") == {}


# -- the running gateway ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with fixture_functions_gateway(database_url) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """The shared `http`, except that bodies come back as the function sent them."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def test_method_path_query_headers_and_body_reach_the_function(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    token = any_user()
    status, seen, headers = await call(
        http, "PUT", f"{gateway.url}/functions/v1/echo/orders/a%20b?x=1&x=2&y=%C3%A9",
        data=b'{"hello": "world"}',
        headers={**auth(token), "X-Custom": "kept", "Content-Type": "application/json"},
    )
    assert status == 200
    assert seen["method"] == "PUT"
    assert seen["path"] == "/echo/orders/a%20b"
    assert seen["query"] == "?x=1&x=2&y=%C3%A9"
    assert seen["body"] == '{"hello": "world"}'
    assert seen["headers"]["x-custom"] == "kept"
    assert seen["headers"]["authorization"] == f"Bearer {token}"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["host"] == gateway.url.removeprefix("http://")
    assert headers["x-echo"] == "yes"


async def test_the_functions_status_and_headers_come_back_unchanged(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, seen, headers = await call(http, "GET", f"{gateway.url}/functions/v1/echo?status=418",
                                       headers=auth(any_user()))
    assert status == 418
    assert seen["path"] == "/echo"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"] == "application/json"


async def test_a_function_gets_the_supabase_environment(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str
) -> None:
    _, seen, _ = await call(http, "POST", f"{gateway.url}/functions/v1/echo",
                            headers=auth(any_user()))
    assert seen["env"] == {
        "SUPABASE_URL": gateway.url,
        "SUPABASE_ANON_KEY": anon_key(),
        "SUPABASE_SERVICE_ROLE_KEY": service_role_key(),
        "SUPABASE_DB_URL": database_url,
    }


async def test_supabase_py_invokes_a_function(gateway: RunningGateway) -> None:
    token = any_user()
    client = await acreate_client(
        gateway.url, anon_key(), AsyncClientOptions(headers={"Authorization": f"Bearer {token}"}))
    answer = await client.functions.invoke(
        "echo", invoke_options={"body": {"n": 1}, "responseType": "json"})
    assert isinstance(answer, dict)
    assert (answer["method"], answer["path"]) == ("POST", "/echo")
    assert json.loads(answer["body"]) == {"n": 1}
    assert answer["headers"]["authorization"] == f"Bearer {token}"


def _forged(claims: dict[str, Any]) -> dict[str, str]:
    expired = tenants.token({**claims, "exp": int(time.time()) - 5})
    return {**forged_tokens(claims), "expired": expired}


async def test_verify_jwt_refuses_missing_and_bad_tokens_but_not_preflights(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/functions/v1/echo"
    status, body, _ = await call(http, "POST", url)
    assert (status, body) == (401, {"msg": "Error: Missing authorization header"})
    claims = {"sub": str(uuid4()), "role": "authenticated", "exp": int(time.time()) + 600}
    for name, token in _forged(claims).items():
        status, body, _ = await call(http, "POST", url, headers=auth(token))
        assert (status, body) == (401, {"msg": "Invalid JWT"}), name
    status, body, _ = await call(http, "POST", url, headers={"apikey": anon_key()})
    assert status == 200  # the apikey alone is a valid JWT (the anon key)
    status, body, headers = await call(
        http, "OPTIONS", url, headers={"Origin": "http://localhost:3000",
                                       "Access-Control-Request-Method": "POST"})
    assert (status, body) == (200, "ok")
    assert "apikey" in headers["Access-Control-Allow-Headers"]


async def test_verify_jwt_false_lets_calls_through_without_a_token(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    status, seen, _ = await call(http, "POST", f"{gateway.url}/functions/v1/echo-public",
                                 data="plain")
    assert (status, seen["path"], seen["body"]) == (200, "/echo-public", "plain")


async def test_unknown_and_shared_slugs_are_404(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    for slug in ("nope", "_shared", "1bad"):
        status, body, headers = await call(http, "POST", f"{gateway.url}/functions/v1/{slug}",
                                           headers=auth(any_user()))
        assert (status, body["code"]) == (404, "NOT_FOUND")
        assert headers["sb-error-code"] == "NOT_FOUND"


async def test_supabase_py_sees_a_refusal_as_a_functions_http_error(
    gateway: RunningGateway,
) -> None:
    client = await acreate_client(gateway.url, anon_key())
    with pytest.raises(FunctionsHttpError):
        await client.functions.invoke("nope", invoke_options={"body": {}})


async def kill(pid: int) -> None:
    """SIGKILL, then wait until the gateway has collected the process. Only then are all
    its threads gone and its listening socket closed: a request sent while the kernel still
    tears it down can be accepted and then reset, which no gateway can tell from a
    function that died of that very request."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"process {pid} was not collected after SIGKILL")


async def test_a_killed_function_is_restarted_and_the_request_still_served(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/functions/v1/echo"
    _, before, _ = await call(http, "GET", url, headers=auth(any_user()))
    await kill(before["pid"])
    status, after, _ = await call(http, "GET", url, headers=auth(any_user()))
    assert status == 200
    assert after["pid"] != before["pid"]
    restarts = [e for e in gateway.log_events()
                if e.get("event") in {"function_restarting", "function_exited"}
                and e.get("slug") == "echo"]
    assert any(e.get("previous_pid", e.get("pid")) == before["pid"] for e in restarts)


async def test_a_function_that_exits_mid_request_is_a_500_then_is_back(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    base = f"{gateway.url}/functions/v1/crash"
    _, alive, _ = await call(http, "GET", base, headers=auth(any_user()))
    status, body, headers = await call(http, "GET", f"{base}/exit", headers=auth(any_user()))
    assert (status, body["code"]) == (500, "WORKER_ERROR")
    assert headers["x-relay-error"] == "true"
    status, again, _ = await call(http, "GET", base, headers=auth(any_user()))
    assert status == 200
    assert again["alive"] is True
    assert again["pid"] != alive["pid"]


async def test_the_watcher_restarts_a_dead_function_without_a_request(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = f"{gateway.url}/functions/v1/echo-public"
    _, before, _ = await call(http, "GET", url)
    await kill(before["pid"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        started = [e for e in gateway.log_events()
                   if e.get("event") == "function_started" and e.get("slug") == "echo-public"
                   and e.get("pid") != before["pid"]]
        if started:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("echo-public was not restarted by the watcher")
    _, after, _ = await call(http, "GET", url)
    assert after["pid"] == started[-1]["pid"]


async def test_stopping_the_gateway_stops_every_function_process(database_url: str) -> None:
    pids: list[int] = []
    with fixture_functions_gateway(database_url) as running:
        async with aiohttp.ClientSession() as http:
            for slug in ("echo", "echo-public", "crash"):
                _, seen, _ = await call(http, "GET", f"{running.url}/functions/v1/{slug}",
                                        headers=auth(any_user()))
                pids.append(seen["pid"])
        assert all(alive(pid) for pid in pids)
    assert not any(alive(pid) for pid in pids)
    stopped = {e["pid"] for e in running.final_events if e.get("event") == "function_stopped"}
    assert stopped == set(pids)
