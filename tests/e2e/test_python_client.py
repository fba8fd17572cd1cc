"""supabase-py, unchanged, against the local gateway and the real pipeline: commands through
the edge function and the RPC, hydration, a read model, and a second tenant that sees
nothing of the first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from postgrest.exceptions import APIError
from supabase import Client
from supabase_functions.errors import FunctionsHttpError

from tests.support.http import SUPABASE_PY_DEPRECATIONS, sync_client_for
from tests.support.scenario import People
from tools.gateway.testing import RunningGateway

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
]

T = TypeVar("T")


async def call(fn: Callable[[], T]) -> T:
    """The client is synchronous; the pump and worker run in this event loop."""
    return await asyncio.to_thread(fn)


def invoke(c: Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = c.functions.invoke("command", {"body": body, "responseType": "json"})
    assert isinstance(answer, dict)
    return answer


def rpc(c: Client, fn: str, args: dict[str, Any]) -> Any:
    return c.rpc(fn, args).execute().data


def status_of(c: Client, command_id: str, seconds: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        answer = rpc(c, "command_status", {"command_id": command_id})
        if answer and answer["status"] in ("processed", "rejected", "failed"):
            return dict(answer)
        assert time.monotonic() < deadline, f"command {command_id} still {answer}"
        time.sleep(0.05)


# What PostgREST answers (the client's APIError carries the code, not the HTTP status):
# anon may not execute the ingress; a bad signature and an expired token are refused first.
REFUSED_CODES = {"anon": "42501", "forged": "PGRST301", "expired": "PGRST303"}


@pytest.fixture(scope="module")
def people() -> People:
    return People()


async def test_commands_through_the_function_and_the_rpc_reach_the_read_model(
    gateway: RunningGateway, pipeline: None, people: People
) -> None:
    a = sync_client_for(gateway, people.token_a)
    item = str(people.item)
    accepted = await call(lambda: invoke(a, {
        "type": "inventory.register_item",
        "payload": {"item_id": item, "sku": "PY-1", "name": "Widget"},
    }))
    assert accepted["status"] == "pending"
    assert (await call(lambda: status_of(a, accepted["commandId"])))["status"] == "processed"

    waited = await call(lambda: invoke(a, {
        "type": "inventory.receive_stock", "aggregateId": item,
        "payload": {"quantity": 5}, "wait": True,
    }))
    assert waited["status"] == "processed"
    assert [e["event_type"] for e in waited["events"]] == ["inventory.stock_received"]

    submitted = await call(lambda: rpc(a, "submit_command", {
        "command_type": "inventory.receive_stock",
        "payload": {"item_id": item, "quantity": 2},
    }))
    assert (await call(lambda: status_of(a, submitted["command_id"])))["status"] == "processed"

    hydrated = await call(lambda: rpc(a, "load_aggregate", {
        "aggregate_type": "inventory.item", "aggregate_id": item,
    }))
    assert hydrated["version"] == 3
    assert [e["version"] for e in hydrated["events"]] == [1, 2, 3]

    rows = await call(lambda: a.table("stock_levels").select("sku, available")
                      .eq("item_id", item).execute().data)
    assert rows == [{"sku": "PY-1", "available": 7}]


async def test_a_second_tenant_can_neither_command_nor_read_the_first_tenants_item(
    gateway: RunningGateway, pipeline: None, people: People
) -> None:
    a, b = sync_client_for(gateway, people.token_a), sync_client_for(gateway, people.token_b)
    item = str(uuid4())  # tenant A's, registered here
    registered = await call(lambda: invoke(a, {
        "type": "inventory.register_item",
        "payload": {"item_id": item, "sku": "PY-2", "name": "Gadget"}, "wait": True,
    }))
    assert registered["status"] == "processed"
    with pytest.raises(FunctionsHttpError) as refused:
        await call(lambda: invoke(b, {
            "type": "inventory.receive_stock", "payload": {"item_id": item, "quantity": 1},
        }))
    assert refused.value.status == 403
    hydrated = await call(lambda: rpc(b, "load_aggregate", {
        "aggregate_type": "inventory.item", "aggregate_id": item,
    }))
    assert hydrated["version"] == 0
    assert hydrated["events"] == []
    assert await call(lambda: b.table("stock_levels").select("*")
                      .eq("item_id", item).execute().data) == []


@pytest.mark.parametrize("who", ["anon", "forged", "expired"])
async def test_anon_forged_and_expired_tokens_are_refused_on_every_path(
    gateway: RunningGateway, people: People, who: str
) -> None:
    token = None if who == "anon" else getattr(people, who)
    c = sync_client_for(gateway, token)
    body = {"type": "inventory.receive_stock",
            "payload": {"item_id": str(people.item), "quantity": 1}}
    with pytest.raises(FunctionsHttpError) as by_function:
        await call(lambda: invoke(c, body))
    assert by_function.value.status == 401
    with pytest.raises(APIError) as by_rpc:
        await call(lambda: c.rpc("submit_command", {
            "command_type": body["type"], "payload": body["payload"],
        }).execute())
    assert by_rpc.value.code == REFUSED_CODES[who]
    with pytest.raises(APIError) as by_table:  # anon has no grant on the read model either
        await call(lambda: c.table("stock_levels").select("*").execute())
    assert by_table.value.code == REFUSED_CODES[who]


async def test_a_retry_with_the_same_command_id_gets_the_first_answer_and_runs_once(
    gateway: RunningGateway, pipeline: None, people: People
) -> None:
    """The README's retry recipe: a client whose request failed mid-flight does not know
    whether the command was stored, so it sends the same commandId again (with `wait`)."""
    a = sync_client_for(gateway, people.token_a)
    item, command_id = str(uuid4()), str(uuid4())
    await call(lambda: invoke(a, {"type": "inventory.register_item", "wait": True,
                                  "payload": {"item_id": item, "sku": "R", "name": "R"}}))
    body = {"type": "inventory.receive_stock", "aggregateId": item, "commandId": command_id,
            "payload": {"quantity": 3}, "wait": True}
    first = await call(lambda: invoke(a, body))
    again = await call(lambda: invoke(a, body))
    assert first["commandId"] == again["commandId"] == command_id
    assert first["status"] == again["status"] == "processed"
    assert [e["event_id"] for e in again["events"]] == [e["event_id"] for e in first["events"]]
    via_rpc = await call(lambda: rpc(a, "submit_command", {
        "command_type": "inventory.receive_stock", "command_id": command_id,
        "payload": {"item_id": item, "quantity": 3},
    }))
    assert via_rpc == {"command_id": command_id, "status": "processed"}
    hydrated = await call(lambda: rpc(a, "load_aggregate", {
        "aggregate_type": "inventory.item", "aggregate_id": item,
    }))
    assert hydrated["version"] == 2  # registered, then received once
