"""Every number and string a command carries is bounded by one declaration (domain.bounds
and the payload model), at both ingress paths: the `command` edge function and the SQL
ingress called as `supabase.rpc` does. Out of range is a 400 `malformed` naming the field,
and nothing is stored; a sum that overflows a read model's column fails that one command
only, and everyone else's commands are processed."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import psycopg
import pytest

from domain.bounds import INT64_MAX, MAX_DEPTH
from tests.support.http import post_json
from tests.support.scenario import People
from tools.gateway.testing import RunningGateway

pytestmark = pytest.mark.integration

OUT_OF_RANGE = [
    ("quantity", 2**63, "at most 9223372036854775807"),
    ("quantity", 10**30, "at most 9223372036854775807"),
    ("quantity", 0, "greater than 0"),
    ("quantity", 1.5, "whole number"),
    ("quantity", "5", "whole number"),
    ("quantity", [5], "whole number"),
]


def nested(levels: int) -> Any:
    """A value `levels` arrays deep: as a payload field, one level deeper than that."""
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


async def via_function(
    http: aiohttp.ClientSession, gateway: RunningGateway, people: People, kind: str,
    payload: dict[str, Any],
) -> tuple[int, Any]:
    body = json.dumps({"type": kind, "payload": payload}).encode()
    return await post_json(http, f"{gateway.url}/functions/v1/command", body, people.headers())


async def via_rpc(
    http: aiohttp.ClientSession, gateway: RunningGateway, people: People, kind: str,
    payload: dict[str, Any],
) -> tuple[int, Any]:
    body = json.dumps({"command_type": kind, "payload": payload}).encode()
    return await post_json(http, f"{gateway.url}/rest/v1/rpc/submit_command", body,
                           people.headers())


async def stored(database_url: str, tenant: UUID) -> int:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (await conn.execute(
            "select count(*) from intent.commands where tenant_id = %s", (tenant,)
        )).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(("field", "value", "says"), OUT_OF_RANGE,
                         ids=["2^63", "10^30", "zero", "fraction", "string", "array"])
async def test_an_out_of_range_number_is_refused_by_the_function_naming_the_field(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str,
    field: str, value: Any, says: str,
) -> None:
    people = People()
    status, answer = await via_function(http, gateway, people, "inventory.receive_stock",
                                        {"item_id": str(uuid4()), field: value})
    assert status == 400, answer
    assert answer["error"]["code"] in ("malformed", "invalid_payload")
    assert field in json.dumps(answer["error"])
    assert await stored(database_url, people.tenant_a) == 0


@pytest.mark.parametrize(("field", "value", "says"), OUT_OF_RANGE,
                         ids=["2^63", "10^30", "zero", "fraction", "string", "array"])
async def test_an_out_of_range_number_is_refused_by_the_sql_ingress_naming_the_field(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str,
    field: str, value: Any, says: str,
) -> None:
    people = People()
    status, answer = await via_rpc(http, gateway, people, "inventory.receive_stock",
                                   {"item_id": str(uuid4()), field: value})
    assert (status, answer["hint"]) == (400, "malformed"), answer
    assert answer["message"].startswith(f"The payload field {field} ")
    assert says in answer["message"]
    assert answer["details"] == field
    assert await stored(database_url, people.tenant_a) == 0


async def test_a_string_longer_than_its_model_allows_is_refused_at_both_paths(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str
) -> None:
    people = People()
    payload = {"item_id": str(uuid4()), "sku": "S" * 65, "name": "N"}
    status, answer = await via_rpc(http, gateway, people, "inventory.register_item", payload)
    assert (status, answer["details"]) == (400, "sku")
    assert "at most 64 characters" in answer["message"]
    status, answer = await via_function(http, gateway, people, "inventory.register_item",
                                        payload)
    assert status == 400
    assert "sku" in json.dumps(answer["error"])
    assert await stored(database_url, people.tenant_a) == 0


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [({"quantity": 1, "junk": [[[[1]]]]}, "junk", "is not a known field"),
     ({}, "quantity", "is required"),
     ({"quantity": nested(MAX_DEPTH)}, "(payload)", f"nested more than {MAX_DEPTH} levels")],
    ids=["unknown-field", "missing-field", "too-deep"],
)
async def test_a_payload_the_model_would_refuse_is_refused_by_the_sql_ingress(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str,
    payload: dict[str, Any], field: str, says: str,
) -> None:
    people = People()
    status, answer = await via_rpc(http, gateway, people, "inventory.receive_stock",
                                   {"item_id": str(uuid4()), **payload})
    assert (status, answer["hint"], answer["details"]) == (400, "malformed", field), answer
    assert says in answer["message"]
    assert await stored(database_url, people.tenant_a) == 0


async def test_the_largest_int64_is_accepted_by_the_sql_ingress(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str
) -> None:
    people = People()
    status, answer = await via_rpc(http, gateway, people, "inventory.receive_stock",
                                   {"item_id": str(uuid4()), "quantity": INT64_MAX})
    assert (status, answer["status"]) == (200, "pending"), answer
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("delete from intent.commands where tenant_id = %s",
                           (people.tenant_a,))


async def wait_statuses(database_url: str, ids: list[str], seconds: float = 30) -> list[str]:
    """Each command's status once all are terminal (bounded wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            rows: dict[str, str] = dict(await (await conn.execute(
                "select command_id::text, status from intent.commands"
                " where command_id = any(%s::uuid[])", (ids,),
            )).fetchall())
        found = [rows.get(i, "missing") for i in ids]
        if all(s in ("processed", "rejected", "failed") for s in found):
            return found
        assert loop.time() < deadline, f"still open: {found}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("path", ["function", "rpc"])
async def test_a_sum_that_overflows_a_read_model_fails_only_its_own_command(
    gateway: RunningGateway, http: aiohttp.ClientSession, database_url: str,
    pipeline: None, path: str,
) -> None:
    """The function carries integers up to 2^53 - 1 exactly (JSON numbers in JavaScript), so
    its overflowing receipt lands on stock already near int64's top; the RPC sends 2^62
    twice."""
    people = People()
    item, other = str(uuid4()), str(uuid4())
    first, second = (INT64_MAX - 10, 2**53 - 1) if path == "function" else (2**62, 2**62)

    async def command(kind: str, payload: dict[str, Any], *, as_b: bool = False,
                      rpc: bool = True) -> str:
        who = People(tenant_a=people.tenant_b, user_a=people.user_b) if as_b else people
        status, answer = await (via_rpc if rpc else via_function)(http, gateway, who, kind,
                                                                 payload)
        assert status in (200, 202), answer
        return str(answer.get("command_id") or answer["commandId"])

    ids = [
        await command("inventory.register_item", {"item_id": item, "sku": "O", "name": "O"}),
        await command("inventory.register_item", {"item_id": other, "sku": "B", "name": "B"},
                      as_b=True),
        await command("inventory.receive_stock", {"item_id": item, "quantity": first}),
        await command("inventory.receive_stock", {"item_id": item, "quantity": second},
                      rpc=path == "rpc"),
        await command("inventory.receive_stock", {"item_id": other, "quantity": 7}, as_b=True,
                      rpc=path == "rpc"),
    ]
    final = await wait_statuses(database_url, ids)
    assert final == ["processed", "processed", "processed", "failed", "processed"]
