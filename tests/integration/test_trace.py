"""Correlation and causation through a saga chain, and `intent trace` printing it."""

from __future__ import annotations

import json
import subprocess
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from pump.store.connections import Conn
from tests.support.db import fetch_all_sync
from tests.support.pipeline import wait_terminal
from tests.support.processes import run_intent
from tests.support.sagas import place_order, running_stack, saga_result, step, stocked_item

pytestmark = pytest.mark.integration


def intent_trace(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_intent("trace", *args, "--database-url", database_url, timeout=120)


async def test_a_saga_chain_carries_one_correlation_id_and_each_step_its_cause(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    # An unpaid order: placed (1), the saga reserves (2), the deadline passes and the saga
    # cancels the order (3), and on its order_cancelled releases the stock (4).
    async with running_stack(pool, database_url, temporal_env, deadline=1.0) as client:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order, placed = await place_order(pool, item, quantity=2)
        await saga_result(client, order)
        await wait_terminal(pool, [placed, step(order, "reserve"), step(order, "release"),
                                   step(order, "cancel")], seconds=30)

    (correlation,) = fetch_all_sync(
        database_url, "select (metadata->>'correlation_id')::uuid"
        " from intent.commands where command_id = %s", placed)[0]
    commands = {r[0]: r for r in fetch_all_sync(
        database_url, "select command_id, command_type, (metadata->>'causation_id')::uuid"
        " from intent.commands where metadata->>'correlation_id' = %s", str(correlation))}
    events = fetch_all_sync(
        database_url, "select event_id, event_type, (metadata->>'causation_id')::uuid"
        " from intent.events where metadata->>'correlation_id' = %s"
        " order by position", str(correlation))
    by_type = {e[1]: e for e in events}

    # Every command of the chain, and nothing else, carries the request's correlation id.
    assert set(commands) == {placed, step(order, "reserve"), step(order, "release"),
                             step(order, "cancel")}
    assert set(by_type) == {"orders.order_placed", "inventory.stock_reserved",
                            "inventory.stock_released", "orders.order_cancelled"}
    placed_event = by_type["orders.order_placed"][0]
    # Events are caused by their command; the saga's commands by the event it reacted to.
    assert by_type["orders.order_placed"][2] == placed
    assert commands[step(order, "reserve")][2] == placed_event
    assert commands[step(order, "cancel")][2] == placed_event
    assert commands[step(order, "release")][2] == by_type["orders.order_cancelled"][0]
    assert by_type["inventory.stock_reserved"][2] == step(order, "reserve")
    assert by_type["inventory.stock_released"][2] == step(order, "release")
    assert by_type["orders.order_cancelled"][2] == step(order, "cancel")

    # `intent trace` prints that tree.
    result = intent_trace(database_url, str(correlation), "--json")
    assert result.returncode == 0, result.stderr
    (tree,) = json.loads(result.stdout)["trees"]
    assert (tree["kind"], UUID(tree["id"])) == ("command", placed)
    (placed_node,) = tree["children"]
    assert placed_node["type"] == "orders.order_placed"
    saga_steps = {UUID(c["id"]): c for c in placed_node["children"]}
    assert set(saga_steps) == {step(order, "reserve"), step(order, "cancel")}
    (cancelled,) = saga_steps[step(order, "cancel")]["children"]
    assert cancelled["type"] == "orders.order_cancelled"
    (release,) = cancelled["children"]
    assert UUID(release["id"]) == step(order, "release")
    assert [e["type"] for e in release["children"]] == ["inventory.stock_released"]

    text = intent_trace(database_url, str(correlation))
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"correlation {correlation}: 8 command(s) and event(s)")
    assert any("orders.place_order" in line for line in lines)
    assert sum("(issued by a saga)" in line for line in lines) == 3
    cancel_line = next(i for i, line in enumerate(lines) if "orders.cancel_order" in line)
    assert "orders.order_cancelled" in lines[cancel_line + 1]


def test_trace_of_an_unknown_correlation_id_exits_1(database_url: str) -> None:
    result = intent_trace(database_url, "00000000-0000-4000-8000-000000000000")
    assert result.returncode == 1
    assert "nothing carries correlation id" in result.stderr


def test_trace_refuses_a_malformed_id(database_url: str) -> None:
    result = intent_trace(database_url, "not-a-uuid")
    assert result.returncode == 2
    assert "not-a-uuid" in result.stderr
