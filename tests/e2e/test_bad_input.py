"""Bad input through the gateway and the real `command` function: each gets a clear error
with a stable code, nothing is stored, and the gateway keeps serving."""

from __future__ import annotations

import json
from uuid import uuid4

import aiohttp
import psycopg
import pytest

from tests.support.http import post_json
from tests.support.scenario import People
from tools.gateway.testing import RunningGateway

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"type": "inventory.register_item", "payload": {', "application/json", 400,
         "malformed_json"),
        (b'{"type": "inventory.register_item", "payload": {}}', "text/plain", 415,
         "unsupported_media_type"),
        (json.dumps({"type": "inventory.no_such_thing", "payload": {}}).encode(),
         "application/json", 400, "unknown_command_type"),
        (json.dumps({"type": "inventory.register_item", "payload": {
            "item_id": str(uuid4()), "sku": "S", "name": "x" * 70_000}}).encode(),
         "application/json", 413, "payload_too_large"),
    ],
    ids=["malformed-json", "wrong-content-type", "unknown-type", "too-large"],
)
async def test_bad_commands_get_a_clear_error_and_store_nothing(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str,
    body: bytes, content_type: str, status: int, code: str,
) -> None:
    people = People()
    answer_status, answer = await post_json(
        http, f"{gateway.url}/functions/v1/command", body, people.headers(content_type)
    )
    assert (answer_status, answer["error"]["code"]) == (status, code)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "select count(*) from intent.commands where tenant_id = %s", (people.tenant_a,)
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == 0
    # ... and the gateway still serves a good request.
    ok_status, ok = await post_json(
        http, f"{gateway.url}/functions/v1/command",
        json.dumps({"type": "inventory.register_item",
                    "payload": {"item_id": str(uuid4()), "sku": "S", "name": "N"}}).encode(),
        people.headers(),
    )
    assert (ok_status, ok["status"]) == (202, "pending")


async def test_an_unsupported_filter_and_an_unknown_function_are_named_in_the_error(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    people = People()
    hdrs = people.headers()
    async with http.get(f"{gateway.url}/rest/v1/stock_levels?available=like.1*",
                        headers=hdrs) as answer:
        assert answer.status == 400
        assert "like" in (await answer.text())
    async with http.post(f"{gateway.url}/functions/v1/no-such-function", data=b"{}",
                         headers=hdrs) as answer:
        assert answer.status == 404
    async with http.get(f"{gateway.url}/rest/v1/stock_levels?select=sku&limit=1",
                        headers=hdrs) as answer:
        assert answer.status == 200
