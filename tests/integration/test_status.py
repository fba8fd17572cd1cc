"""`intent status` against a real database (and the real Temporal dev server for sagas)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from temporalio.testing import WorkflowEnvironment

from pump.sagas.contracts import SAGA_WORKFLOW
from tests.support.processes import run_intent
from tools.checks.status import read_sagas


def intent_status(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_intent("status", "--database-url", database_url, *args, timeout=120)


@pytest.fixture
def trouble(database_url: str) -> Iterator[dict[str, Any]]:
    """A batch left dispatched ten minutes ago, a follower stopped by an error, and an open
    transaction with an id (which holds the feed back); all removed afterwards."""
    batch_id, consumer = uuid4(), f"projection:status_test_{uuid4().hex[:8]}@1"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into intent.batches (batch_id, command_count, claimed_by, updated_at)"
            " values (%s, 3, 'test', now() - interval '10 minutes')", (batch_id,))
        conn.execute(
            "insert into intent.checkpoints (consumer, error) values (%s, %s)",
            (consumer, json.dumps({"message": "boom in the handler"})))
        holder = psycopg.connect(database_url)
        try:
            holder.execute("select pg_current_xact_id()")  # the transaction now has an id
            pid = holder.info.backend_pid
            yield {"batch_id": str(batch_id), "consumer": consumer, "pid": pid}
        finally:
            holder.rollback()
            holder.close()
            conn.execute("delete from intent.batches where batch_id = %s", (batch_id,))
            conn.execute("delete from intent.checkpoints where consumer = %s", (consumer,))


def test_status_reports_stuck_batch_stopped_follower_and_held_back_feed(
    database_url: str, trouble: dict[str, Any]
) -> None:
    result = intent_status(database_url, "--json", "--no-temporal", "--held-back-after", "0")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert trouble["batch_id"] in {b["batch_id"] for b in report["stuck_batches"]}
    stopped = {c["consumer"]: c for c in report["consumers"]}[trouble["consumer"]]
    assert stopped["error"] == {"message": "boom in the handler"}
    assert stopped["checkpoint"] == "0/0"
    assert report["held_back_by"]["pid"] == trouble["pid"]
    notes = "\n".join(report["attention"])
    assert "batch(es) dispatched" in notes
    assert f"{trouble['consumer']} is stopped by an error" in notes
    assert "has held the feed back" in notes
    assert set(report["commands"]["by_status"]) == {
        "pending", "dispatched", "processed", "rejected", "failed"}


def test_status_lists_every_async_projection_with_its_lag(database_url: str) -> None:
    from projections.shop import catalog

    result = intent_status(database_url, "--json", "--no-temporal")
    report = json.loads(result.stdout)
    consumers = {c["consumer"]: c for c in report["consumers"]}
    for projection in catalog:
        if projection.mode == "async":
            assert projection.consumer in consumers
        else:
            assert projection.name in {p["name"] for p in report["inline_projections"]}
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from intent.events").fetchone()
    total = int(row[0]) if row else 0
    for consumer in consumers.values():
        assert 0 <= consumer["lag_events"] <= total
        if consumer["lag_events"] == 0:
            assert consumer["lag_seconds"] == 0


def test_status_text_names_what_needs_attention(
    database_url: str, trouble: dict[str, Any]
) -> None:
    result = intent_status(database_url, "--no-temporal")
    assert result.returncode == 1
    assert "needs attention" in result.stdout
    assert trouble["batch_id"] in result.stdout
    assert "boom in the handler" in result.stdout


def test_status_of_an_unreachable_database_exits_3() -> None:
    result = intent_status("postgresql://postgres:postgres@127.0.0.1:9/none", "--no-temporal")
    assert result.returncode == 3
    assert "cannot reach the database" in result.stderr


async def test_sagas_are_counted_by_saga_from_temporal(
    temporal_env: WorkflowEnvironment,
) -> None:
    client = temporal_env.client
    address = client.service_client.config.target_host
    workflow_id = f"intent-saga-orders.status_test-{uuid4()}-{uuid4().hex[:6]}"
    # No worker polls this queue: the workflow stays running, which is what is counted.
    handle = await client.start_workflow(
        SAGA_WORKFLOW, id=workflow_id, task_queue=f"status-test-{uuid4().hex[:6]}"
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            sagas = await read_sagas(address, client.namespace)
            assert sagas.reachable, sagas.error
            if sagas.running.get("orders.status_test") == 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert sagas.running.get("orders.status_test") == 1
        assert sagas.by_state["running"] >= 1  # what the intent.sagas gauge reports
        assert set(sagas.by_state) == {"running", "completed", "failed", "timedout",
                                       "terminated", "canceled"}
    finally:
        await handle.terminate("test over")


async def test_unreachable_temporal_is_reported_not_raised() -> None:
    sagas = await read_sagas("127.0.0.1:9", "default")
    assert not sagas.reachable
    assert sagas.error
