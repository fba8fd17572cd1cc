"""Commands sent as PostgREST would send them, for the benchmarks of the command path.

A request is one transaction: the role `authenticated` and the caller's JWT claims set for
the transaction (`set_config(..., true)`, i.e. `set local`), then `public.submit_command`,
all in one simple-query message. Here too: waiting until commands are terminal, and waking
on the pumps' NOTIFY (a batch commit sends one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from pump.batches.pump import CHANNEL
from pump.store.connections import Conn, open_pool
from tools.bench.database import BenchError

TERMINAL = ("processed", "rejected", "failed")

Work = list[tuple[UUID, UUID, UUID, int]]  # tenant, user, item, quantity


@dataclass(frozen=True)
class Caller:
    tenant_id: UUID
    user_id: UUID

    def claims(self) -> str:
        return json.dumps(
            {
                "sub": str(self.user_id),
                "role": "authenticated",
                "aud": "authenticated",
                "app_metadata": {"tenant_id": str(self.tenant_id)},
            }
        )


def request_text(caller: Caller, command_type: str, payload: dict[str, Any]) -> bytes:
    """One request as one simple-query message: its own transaction, the role and the
    claims set for the transaction (`set_config(..., true)`, as PostgREST does), then the
    function. One round trip, and a third of the client CPU of psycopg's extended protocol
    (the load generator shares the machine's two cores with what it measures). Every value
    is quoted as a literal by psycopg."""
    return (
        "begin;"
        "select set_config('role', 'authenticated', true),"
        f" set_config('request.jwt.claims', {sql.quote(caller.claims())}, true);"
        f"select public.submit_command(command_type => {sql.quote(command_type)},"
        f" payload => {sql.quote(json.dumps(payload))}::jsonb);"
        "commit;"
    ).encode()


async def submit_on(
    conn: Conn, caller: Caller, command_type: str, payload: dict[str, Any]
) -> UUID:
    """One request on a connection in autocommit mode; the id of the stored command."""
    cur = conn.cursor()
    await cur.execute(request_text(caller, command_type, payload), prepare=False)
    # Results in statement order: begin, set_config, submit_command, commit.
    cur.nextset()
    cur.nextset()
    row = await cur.fetchone()
    if row is None or row[0].get("status") != "pending":
        raise BenchError(f"submit_command answered {row!r}")
    return UUID(row[0]["command_id"])


async def submit(
    pool: AsyncConnectionPool[Conn], caller: Caller, command_type: str, payload: dict[str, Any]
) -> UUID:
    async with pool.connection() as conn:
        return await submit_on(conn, caller, command_type, payload)


async def submit_all(
    pool: AsyncConnectionPool[Conn], work: Work, concurrency: int
) -> tuple[list[UUID], float, float]:
    """`receive_stock` for every item of `work`, by `concurrency` concurrent callers; the
    command ids, and when the first submit started and the last one returned."""
    ids: list[UUID] = []
    todo = iter(work)  # shared: each caller takes the next piece of work

    async def caller() -> None:
        async with pool.connection() as conn:  # a caller keeps its connection, as a client
            for tenant, user, item, quantity in todo:
                payload = {"item_id": str(item), "quantity": quantity}
                ids.append(
                    await submit_on(
                        conn, Caller(tenant, user), "inventory.receive_stock", payload
                    )
                )

    started = perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return ids, started, perf_counter()


def submit_in_process(url: str, work: Work, concurrency: int) -> tuple[list[UUID], float, float]:
    """`submit_all` in a client process of its own (perf_counter is CLOCK_MONOTONIC, the
    same clock in every process)."""

    async def run() -> tuple[list[UUID], float, float]:
        pool = await open_pool(url, min_size=concurrency, max_size=concurrency, name="clients")
        try:
            return await submit_all(pool, work, concurrency)
        finally:
            await pool.close()

    return asyncio.run(run())


async def wait_terminal(
    pool: AsyncConnectionPool[Conn], ids: Sequence[UUID], seconds: float = 300
) -> dict[str, int]:
    """Wait until every command of `ids` is terminal; how many ended in each status."""
    deadline = perf_counter() + seconds
    while True:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select status, count(*) from intent.commands where command_id = any(%s)"
                " group by status",
                (list(ids),),
            )
            counts = {row[0]: row[1] for row in await cur.fetchall()}
        if sum(counts.get(s, 0) for s in TERMINAL) == len(ids):
            return counts
        if perf_counter() > deadline:
            raise BenchError(f"commands still open after {seconds:.0f}s: {counts}")
        # Coarse on purpose: this poll shares the pump's process and database; 50 ms is
        # under 1 % of a full round.
        await asyncio.sleep(0.05)


async def wake_on_notify(url: str, wake: asyncio.Event) -> None:
    """Set `wake` on every notification on the pumps' channel (a batch commit sends one),
    until cancelled; a lost connection is opened again."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            async with conn:
                await conn.execute(f"listen {CHANNEL}")
                async for _ in conn.notifies():
                    wake.set()
        except psycopg.Error:
            await asyncio.sleep(0.5)
