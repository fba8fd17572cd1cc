"""The edge functions under Deno: `deno check`, `deno lint`, `deno fmt --check` and `deno test`
on supabase/functions, then the `command` function itself, served by Deno exactly as
index.ts starts it, against the session's real PostgreSQL.

For the end-to-end tests, a minimal stand-in for PostgREST's `/rest/v1/rpc/<fn>` (verify
the JWT, then in one transaction set the role and the claims and call the function with
named arguments, mapping errors as PostgREST does) sits between the function and the
database, so the real supabase-js calls reach the real SQL. Nothing is skipped: a missing
Deno fails with the command that installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jwt
import psycopg
import pytest
from aiohttp import ClientSession, web
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.builders import TRACEPARENT
from tests.support.db import fetch_one
from tests.support.http import auth
from tests.support.pipeline import running_pumps
from tests.support.tenants import Tenants, token
from tools.local.cluster import LocalCluster, free_port
from tools.local.keys import LOCAL_JWT_SECRET, anon_key, user_token
from tools.settings import REPO_ROOT, local_url

pytestmark = pytest.mark.integration

FUNCTIONS = REPO_ROOT / "supabase" / "functions"
CONFIG = FUNCTIONS / "command" / "deno.json"
DENO = REPO_ROOT / "node_modules" / ".bin" / "deno"
RPC_FUNCTIONS = frozenset({"submit_command", "command_status", "read_stream", "load_aggregate"})


def _deno_env() -> dict[str, str]:
    """Deno's cache in .intent/deno; never the repository's package.json (Deno would resolve
    npm packages from node_modules through it instead of the function's import map)."""
    return {**os.environ, "DENO_DIR": str(REPO_ROOT / ".intent" / "deno"), "NO_COLOR": "1",
            "DENO_NO_PACKAGE_JSON": "1", "DENO_NO_UPDATE_CHECK": "1"}


@pytest.fixture(scope="module")
def deno() -> Path:
    if not DENO.is_file():
        pytest.fail(
            f"Deno is missing ({DENO.relative_to(REPO_ROOT)}): `./run setup` installs it from "
            "package-lock.json (npm install)"
        )
    return DENO


def _run(deno: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(deno), *args], cwd=FUNCTIONS, env=_deno_env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def _explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(proc.args)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"


# -- the toolchain -----------------------------------------------------------------------------


def test_functions_type_check(deno: Path) -> None:
    sources = sorted(str(p.relative_to(FUNCTIONS)) for p in FUNCTIONS.rglob("*.ts"))
    assert "command/index.ts" in sources
    proc = _run(deno, "check", "--config", str(CONFIG), *sources)
    assert proc.returncode == 0, _explain(proc)


def test_functions_lint_clean(deno: Path) -> None:
    proc = _run(deno, "lint", "--config", str(CONFIG), "command", "_shared")
    assert proc.returncode == 0, _explain(proc)


def test_functions_are_formatted(deno: Path) -> None:
    proc = _run(deno, "fmt", "--check", "--config", str(CONFIG), "command", "_shared")
    assert proc.returncode == 0, _explain(proc) + "\n(run deno fmt with the same arguments)"


def test_function_unit_tests_pass(deno: Path) -> None:
    proc = _run(deno, "test", "--config", str(CONFIG), "command")
    assert proc.returncode == 0, _explain(proc)
    passed = re.search(r"ok \| (\d+) passed \| 0 failed", proc.stdout)
    assert passed is not None, proc.stdout[-2000:]
    assert int(passed[1]) >= 50, "fewer Deno tests than expected: were some files lost?"


def test_no_lock_file_is_left_next_to_the_function() -> None:
    """Deno 2 writes lock file v5, which the edge runtime that deploys functions may not
    read; deno.json turns the lock file off and pins the exact npm version instead."""
    assert not (FUNCTIONS / "command" / "deno.lock").exists()
    assert json.loads(CONFIG.read_text())["lock"] is False


# -- a PostgREST stand-in ----------------------------------------------------------------------


ANON_KEY = anon_key()


def _postgrest_status(sqlstate: str, role: str) -> int:
    if re.fullmatch(r"PT\d{3}", sqlstate):
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 401 if role == "anon" else 403
    return 400


def rest_app(pool: AsyncConnectionPool[Conn]) -> web.Application:
    async def rpc(request: web.Request) -> web.Response:
        name = request.match_info["fn"]
        if name not in RPC_FUNCTIONS:
            return web.json_response({"code": "PGRST202", "message": f"no function {name}",
                                      "details": None, "hint": None}, status=404)
        claims: dict[str, Any] = {"role": "anon"}
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            try:
                claims = jwt.decode(auth[7:], LOCAL_JWT_SECRET, algorithms=["HS256"],
                                    options={"verify_aud": False})
            except jwt.PyJWTError as error:
                return web.json_response({"code": "PGRST301", "message": str(error),
                                          "details": None, "hint": None}, status=401)
        role = str(claims.get("role", "anon"))
        args: dict[str, Any] = await request.json()
        query = sql.SQL("select public.{}({})").format(
            sql.Identifier(name),
            sql.SQL(", ").join(sql.SQL("{} => {}").format(sql.Identifier(k), sql.Placeholder())
                               for k in args),
        )
        values = [Jsonb(v) if isinstance(v, dict | list) else v for v in args.values()]
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "select set_config('role', %s, true),"
                    " set_config('request.jwt.claims', %s, true)",
                    (role, json.dumps(claims)),
                )
                cur = await conn.execute(query, values)
                row = await cur.fetchone()
        except psycopg.Error as error:
            state = error.sqlstate or ""
            return web.json_response(
                {"code": state, "message": error.diag.message_primary,
                 "details": error.diag.message_detail, "hint": error.diag.message_hint},
                status=_postgrest_status(state, role),
            )
        assert row is not None
        return web.json_response(row[0])

    app = web.Application()
    app.router.add_post("/rest/v1/rpc/{fn}", rpc)
    return app


# -- the function under Deno -------------------------------------------------------------------


@dataclass
class Served:
    url: str
    logs: list[dict[str, Any]] = field(default_factory=list)  # its JSON lines on stdout
    errors: list[str] = field(default_factory=list)  # stderr, after "Listening on"

    def log_for(self, command_id: str) -> dict[str, Any]:
        found = [line for line in self.logs if line.get("command_id") == command_id]
        assert len(found) == 1, self.logs
        return found[0]


@pytest.fixture(scope="module")
async def rest(pg_cluster: LocalCluster) -> AsyncIterator[str]:
    """The stand-in REST API, connecting as `authenticator` as PostgREST does."""
    url = local_url(pg_cluster.port, user="authenticator")
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(url, min_size=1, max_size=8,
                                                          open=False)
    await pool.open(wait=True)
    runner = web.AppRunner(rest_app(pool))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await pool.close()


@pytest.fixture(scope="module")
async def function(deno: Path, rest: str) -> AsyncIterator[Served]:
    """index.ts, unchanged, under Deno: DENO_SERVE_ADDRESS moves Deno.serve from 0.0.0.0:8000
    to a free port on 127.0.0.1 (as the gateway starts functions)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(deno), "run", "--config", str(CONFIG), "--allow-net", "--allow-env",
        "--allow-read", "--no-prompt", str(FUNCTIONS / "command" / "index.ts"),
        cwd=FUNCTIONS, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**_deno_env(), "DENO_SERVE_ADDRESS": f"tcp:127.0.0.1:{port}",
             "SUPABASE_URL": rest, "SUPABASE_ANON_KEY": ANON_KEY,
             "INTENT_PUBLIC_SUPABASE_URL": "https://project.example"},
    )
    served = Served(url=f"http://127.0.0.1:{port}/command")
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def collect() -> None:
        async for raw in stdout:
            try:
                served.logs.append(json.loads(raw))
            except ValueError:
                served.logs.append({"unparsed": raw.decode(errors="replace")})

    async def drain() -> None:
        async for raw in stderr:
            served.errors.append(raw.decode(errors="replace"))

    readers: list[asyncio.Task[None]] = []
    try:
        # Deno.serve announces "Listening on <url>" on stderr once the port is bound.
        first = await asyncio.wait_for(stderr.readline(), timeout=120)
        if not first.startswith(b"Listening on"):
            rest_of = await asyncio.wait_for(stderr.read(), timeout=10)
            pytest.fail(f"the function did not start: {first!r}\n{rest_of.decode()}")
        readers = [asyncio.create_task(collect()), asyncio.create_task(drain())]
        yield served
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=10)
        await asyncio.gather(*readers)


async def post(
    served: Served, body: Any, bearer: str, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with ClientSession() as session, session.post(
        served.url, json=body, headers={**auth(bearer), **headers}
    ) as response:
        headers_seen = {name.lower(): value for name, value in response.headers.items()}
        return response.status, await response.json(), headers_seen


# -- end to end --------------------------------------------------------------------------------


async def test_a_command_goes_in_as_the_caller_with_its_correlation_and_trace(
    function: Served, pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    tenant, user, item, correlation = tenants.new(), uuid4(), uuid4(), uuid4()
    status, body, headers = await post(
        function,
        {"type": "inventory.register_item", "aggregateId": str(item),
         "payload": {"sku": "SKU-1", "name": "A thing"}},
        user_token(tenant, user),
        **{"x-correlation-id": str(correlation), "traceparent": TRACEPARENT},
    )

    assert status == 202, body
    command_id = body["commandId"]
    assert body == {
        "commandId": command_id,
        "status": "pending",
        "statusUrl": f"https://project.example/rest/v1/rpc/command_status?command_id={command_id}",
        "correlationId": str(correlation),
    }
    assert headers["access-control-allow-origin"] == "*"
    assert headers["x-correlation-id"] == str(correlation)
    stored = await fetch_one(
        pool,
        "select tenant_id, user_id, role, command_type, aggregate_id, payload, status,"
        " metadata ->> 'correlation_id', metadata ->> 'traceparent'"
        " from intent.commands where command_id = %s", UUID(command_id),
    )
    assert stored == (tenant, user, "authenticated", "inventory.register_item", item,
                      {"item_id": str(item), "sku": "SKU-1", "name": "A thing"}, "pending",
                      str(correlation), TRACEPARENT)
    await asyncio.sleep(0.05)  # the log line is written as the response goes out
    line = function.log_for(command_id)
    assert line["status"] == 202
    assert line["method"] == "POST"
    assert line["command_type"] == "inventory.register_item"
    assert line["correlation_id"] == str(correlation)
    assert line["trace_id"] == TRACEPARENT.split("-")[1]
    assert isinstance(line["duration_ms"], int | float)
    assert not function.errors, function.errors


async def test_waiting_answers_the_outcome_with_the_events_appended(
    function: Served, pool: AsyncConnectionPool[Conn], database_url: str,
    tenants: Tenants,
) -> None:
    tenant, item = tenants.new(), uuid4()
    caller = user_token(tenant, uuid4())
    async with running_pumps(pool, database_url, poll_interval=0.1):
        status, body, _ = await post(
            function,
            {"type": "inventory.register_item", "wait": 10,
             "payload": {"item_id": str(item), "sku": "SKU-9", "name": "Nine"}},
            caller,
        )
        assert status == 200, body
        assert body["status"] == "processed"
        assert body["result"]["version"] == 1
        assert body["error"] is None
        [event] = body["events"]
        assert event["event_type"] == "inventory.item_registered"
        assert event["version"] == 1
        assert event["payload"]["item_id"] == str(item)
        assert event["event_id"] == body["result"]["events"][0]

        status, body, _ = await post(
            function,
            {"type": "inventory.receive_stock", "wait": True,
             "payload": {"item_id": str(uuid4()), "quantity": 5}},
            caller,
        )
        assert status == 200, body
        assert body["status"] == "rejected"
        assert body["error"]["code"] == "item_not_registered"
        assert body["events"] == []


async def test_database_refusals_reach_the_client_with_their_codes(
    function: Served, tenants: Tenants
) -> None:
    tenant_a, tenant_b, item = tenants.new(), tenants.new(), uuid4()
    register = {"type": "inventory.register_item",
                "payload": {"item_id": str(item), "sku": "S", "name": "N"}}
    status, body, _ = await post(function, register, user_token(tenant_a, uuid4()))
    assert status == 202, body

    cases = [
        (user_token(tenant_b, uuid4()), 403, "forbidden"),  # tenant A's aggregate
        (token({"sub": str(uuid4()), "role": "authenticated"}), 401, "no_tenant"),
        (ANON_KEY, 401, "unauthenticated"),
        (token({"sub": str(uuid4()), "role": "authenticated"}, expires_in=-60), 401,
         "invalid_jwt"),
    ]
    for bearer, expected_status, code in cases:
        status, body, _ = await post(function, register, bearer)
        assert (status, body["error"]["code"]) == (expected_status, code), body


async def test_bad_input_is_answered_with_the_failing_paths_and_preflight_passes(
    function: Served, tenants: Tenants
) -> None:
    caller = user_token(tenants.new(), uuid4())
    status, body, _ = await post(
        function,
        {"type": "inventory.receive_stock", "payload": {"item_id": "x", "quantity": 0}},
        caller,
    )
    assert status == 400
    assert body["error"]["code"] == "invalid_payload"
    assert [e["path"] for e in body["error"]["details"]["errors"]] == ["/item_id", "/quantity"]
    async with ClientSession() as session, session.options(function.url) as response:
        assert response.status == 200
        assert "authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_the_catalogue_limit_is_the_ingress_limit(
    pool: AsyncConnectionPool[Conn], tenants: Tenants
) -> None:
    """The generated catalogue's max_payload_bytes, checked against the live ingress: a
    payload of exactly that many bytes of jsonb text passes the size check (and is then
    refused for its undeclared `pad` field, a later check), one more fails the size check."""
    limit = json.loads((FUNCTIONS / "_shared" / "command_schemas.json").read_text())[
        "max_payload_bytes"]
    tenant = tenants.new()
    claims = json.dumps({"sub": str(uuid4()), "role": "authenticated",
                         "app_metadata": {"tenant_id": str(tenant)}})

    async def submit(payload: dict[str, Any]) -> str:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("set local role authenticated")
            await conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
            try:
                await conn.execute("select public.submit_command(%s, %s)",
                                   ("inventory.register_item", Jsonb(payload)))
            except psycopg.Error as error:
                return f"{error.sqlstate} {error.diag.message_hint}"
        return "accepted"

    item = str(uuid4())
    base = (await fetch_one(pool, "select octet_length(%s::jsonb::text)",
                      Jsonb({"item_id": item, "pad": ""})))[0]
    assert await submit({"item_id": item, "pad": "x" * (limit - base + 1)}) == (
        "PT413 payload_too_large")
    assert await submit({"item_id": item, "pad": "x" * (limit - base)}) == "PT400 malformed"
