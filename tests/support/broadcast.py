"""The broadcast relay as the tests drive it: relayed until idle or running in the test's
loop, as an `intent relay` process, and what it wrote read back the way Realtime reads it
(realtime.messages inserts in WAL order, from a temporary wal2json slot)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from domain.feed import FeedPosition
from pump.broadcast.relay import CONSUMER, BroadcastRelay
from pump.readiness import READY_FILE_VARIABLE, ready_pid
from pump.store.connections import Conn
from tests.support.db import runtime_url
from tests.support.processes import intent_process
from tests.support.waiting import until

READY_SECONDS = 60.0


async def relay_until_idle(pool: AsyncConnectionPool[Conn], *, page: int = 1000) -> int:
    """Relay until a call passes nothing (what other tests left behind included): the events
    passed."""
    relay, total = BroadcastRelay(pool, page=page), 0
    while relayed := await relay.relay_once():
        total += relayed
    return total


@contextlib.asynccontextmanager
async def running_relay(
    pool: AsyncConnectionPool[Conn], *, page: int = 1000, idle_seconds: float = 0.02
) -> AsyncIterator[BroadcastRelay]:
    """A relay running in this loop until the block ends (then stopped and awaited)."""
    relay = BroadcastRelay(pool, page=page, idle_seconds=idle_seconds)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        yield relay
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def relay_process(
    database_url: str, ready_dir: Path, *args: str
) -> AsyncIterator[subprocess.Popen[str]]:
    """`intent relay` as the runtime role, once it says it is serving (its ready file);
    stopped by its PID when the block ends, whatever the test did to it."""
    ready = ready_dir / f"relay-{secrets.token_hex(4)}"
    with intent_process(runtime_url(database_url), "relay", *args,
                        env={READY_FILE_VARIABLE: str(ready)}) as proc:

        async def serving() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "it exited"
            return ready_pid(ready) == proc.pid

        await until(serving, READY_SECONDS, "intent relay to be ready")
        yield proc


async def relay_checkpoint(pool: AsyncConnectionPool[Conn]) -> tuple[FeedPosition, Any]:
    """The relay's checkpoint and the error noted on it."""
    async with pool.connection() as conn:
        row = await (await conn.execute(
            "select transaction_id::text::bigint, position, error from intent.checkpoints"
            " where consumer = %s", (CONSUMER,))).fetchone()
    assert row is not None, "the relay has no checkpoint"
    return FeedPosition(int(row[0]), int(row[1])), row[2]


@dataclass(frozen=True)
class Message:
    """One realtime.messages row, as decoded from the WAL."""

    id: UUID
    topic: str
    event: str
    private: bool
    extension: str
    payload: dict[str, Any]

    @property
    def event_id(self) -> UUID:
        return UUID(str(self.payload["event_id"]))


class WalMessages:
    """What Realtime would read: realtime.messages inserts, in WAL (commit) order, from a
    temporary wal2json slot of a connection of its own (created when entered, so only what
    is written after that is seen)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._slot = f"intent_test_{secrets.token_hex(4)}"
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.messages: list[Message] = []

    async def __aenter__(self) -> WalMessages:
        self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        await self._conn.execute(
            "select pg_create_logical_replication_slot(%s, 'wal2json', true)", (self._slot,))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._conn is not None:
            await self._conn.close()  # the temporary slot goes with its session

    async def read(self) -> list[Message]:
        """Everything committed since the last read, added to `messages`; all of them."""
        assert self._conn is not None
        async with self._conn.transaction():  # decoding stops at the WAL on disk: flush it
            await self._conn.execute("set local synchronous_commit = on")
            await self._conn.execute("select pg_logical_emit_message(true, 'intent-test', '')")
        cur = await self._conn.execute(
            "select data from pg_logical_slot_get_changes(%s, null, null, 'format-version',"
            " '2', 'add-tables', 'realtime.messages')", (self._slot,))
        for (data,) in await cur.fetchall():
            record = json.loads(data)
            if record.get("action") == "I" and record.get("table") == "messages":
                self.messages.append(_message(record))
        return self.messages

    def on_topics(self, topics: Iterable[str]) -> dict[str, list[Message]]:
        """The messages read so far on each of `topics`, in the order they were written."""
        wanted: dict[str, list[Message]] = {topic: [] for topic in topics}
        for message in self.messages:
            if message.topic in wanted:
                wanted[message.topic].append(message)
        return wanted


def _message(record: dict[str, Any]) -> Message:
    values = {c["name"]: c["value"] for c in record["columns"]}
    payload = values["payload"]
    return Message(
        id=UUID(values["id"]), topic=values["topic"], event=values["event"],
        private=bool(values["private"]), extension=values["extension"],
        payload=json.loads(payload) if isinstance(payload, str) else payload,
    )


async def feed_order(pool: AsyncConnectionPool[Conn], tenants: Iterable[UUID]
                     ) -> list[tuple[UUID, UUID, str, UUID]]:
    """(event id, tenant, aggregate type, aggregate id) of the tenants' events, in feed
    order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select event_id, tenant_id, aggregate_type, aggregate_id from intent.events"
            " where tenant_id = any(%s) order by transaction_id, position", (list(tenants),))
        return [(r[0], r[1], r[2], r[3]) for r in await cur.fetchall()]


def tenant_topic(tenant: UUID) -> str:
    return f"intent:tenant:{tenant}"


def aggregate_topic(tenant: UUID, aggregate_type: str, aggregate_id: UUID) -> str:
    return f"intent:aggregate:{tenant}:{aggregate_type}:{aggregate_id}"


def assert_broadcast_once_in_feed_order(
    messages: WalMessages, events: list[tuple[UUID, UUID, str, UUID]]
) -> None:
    """Every event exactly once on its tenant's and its aggregate's topic, and each topic's
    messages in feed order; nothing else on those topics."""
    expected: dict[str, list[UUID]] = {}
    for event_id, tenant, aggregate_type, aggregate_id in events:
        expected.setdefault(tenant_topic(tenant), []).append(event_id)
        expected.setdefault(aggregate_topic(tenant, aggregate_type, aggregate_id),
                            []).append(event_id)
    seen = messages.on_topics(expected)
    for topic, event_ids in expected.items():
        assert [m.event_id for m in seen[topic]] == event_ids, topic
        for message in seen[topic]:
            is_aggregate = topic.startswith("intent:aggregate:")
            assert (message.id == message.event_id) is is_aggregate, message
            assert message.private
            assert message.extension == "broadcast"
            assert message.payload["id"] == str(message.event_id)
