"""`intent pump --direct` as a real process: killed with SIGKILL mid-run, and stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from contextlib import AbstractContextManager
from uuid import UUID

import pytest
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.pipeline import assert_once_in_order, enqueue, statuses, wait_terminal
from tests.support.processes import intent_process
from tests.support.streams import new_stream

pytestmark = pytest.mark.integration


def pump_process(database_url: str) -> AbstractContextManager[subprocess.Popen[str]]:
    return intent_process(database_url, "pump", "--direct", "--batch-limit", "8",
                          "--poll-interval", "0.1", "--sweep-after", "1")


async def test_a_pump_killed_mid_run_loses_nothing_and_duplicates_nothing(
    pool: AsyncConnectionPool[Conn], database_url: str
) -> None:
    streams = [new_stream() for _ in range(6)]
    ids: list[UUID] = [
        await enqueue(pool, s, "register_item", sku="S", name="W") for s in streams
    ]
    for round_ in range(50):
        for stream in streams:
            ids.append(await enqueue(pool, stream, "receive_stock", quantity=round_ + 1))
    with pump_process(database_url) as first:
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # kill it once it is well into the work, not before
            done = sum(s == "processed" for s in (await statuses(pool, ids)).values())
            if done >= 30:
                break
            assert asyncio.get_running_loop().time() < deadline, "the pump made no progress"
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            await asyncio.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert done < len(ids), "the pump finished before it could be killed"
    with pump_process(database_url) as second:
        final = await wait_terminal(pool, ids, seconds=90)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
    assert set(final.values()) == {"processed"}
    await assert_once_in_order(pool, [s.aggregate_id for s in streams], ids, length=51)


def test_sigterm_stops_an_idle_pump_cleanly(database_url: str) -> None:
    with pump_process(database_url) as proc:
        assert proc.stderr is not None
        first_line = proc.stderr.readline()
        assert "running (direct mode" in first_line
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        rest = proc.stderr.read()
    assert code == 0
    assert "pump stopped" in rest
