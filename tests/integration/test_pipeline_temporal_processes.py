"""`intent worker` and `intent pump` as real processes against the Temporal dev server:
either one killed with SIGKILL mid-run, then restarted: every command completes, once."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from contextlib import ExitStack
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from pump.store.connections import Conn
from tests.support.pipeline import assert_once_in_order, enqueue, statuses, wait_terminal
from tests.support.processes import intent_process
from tests.support.streams import new_stream

pytestmark = pytest.mark.integration


PUMP = ("pump", "--batch-limit", "8", "--poll-interval", "0.1", "--sweep-after", "2",
        "--attempt-timeout", "2")


async def progress_then_kill(
    pool: AsyncConnectionPool[Conn], ids: list[UUID], victim: subprocess.Popen[str]
) -> None:
    deadline = asyncio.get_running_loop().time() + 90
    while sum(s == "processed" for s in (await statuses(pool, ids)).values()) < 30:
        assert asyncio.get_running_loop().time() < deadline, "no progress before the kill"
        assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
        await asyncio.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)


@pytest.mark.parametrize("victim", ["worker", "pump"])
async def test_a_killed_worker_or_pump_loses_nothing_and_duplicates_nothing(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment,
    victim: str,
) -> None:
    env = {
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "INTENT_TASK_QUEUE": f"intent-test-{uuid4().hex[:8]}",
    }
    streams = [new_stream() for _ in range(5)]
    ids = [await enqueue(pool, s, "register_item", sku="S", name="W") for s in streams]
    for round_ in range(40):
        for stream in streams:
            ids.append(await enqueue(pool, stream, "receive_stock", quantity=round_ + 1))
    with ExitStack() as stack:
        worker = stack.enter_context(intent_process(database_url, "worker", env=env))
        pump = stack.enter_context(intent_process(database_url, *PUMP, env=env))
        await progress_then_kill(pool, ids, worker if victim == "worker" else pump)
        again = ("worker",) if victim == "worker" else PUMP
        stack.enter_context(intent_process(database_url, *again, env=env))
        final = await wait_terminal(pool, ids, seconds=120)
    assert set(final.values()) == {"processed"}
    await assert_once_in_order(pool, [s.aggregate_id for s in streams], ids, length=41)
