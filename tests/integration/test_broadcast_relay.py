"""The broadcast relay (pump/broadcast, `intent relay`): every committed event becomes one
Realtime message on its tenant's topic and one on its aggregate's, exactly once and in feed
order, whatever happens to the relay; what it writes is read back from the WAL, as Realtime
reads it."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from psycopg_pool import AsyncConnectionPool

from pump.broadcast.relay import CONSUMER, BroadcastRelay
from pump.observability import telemetry
from pump.observability.gauges import sample_broadcast_lag
from pump.store.connections import Conn
from pump.store.events import PostgresEventStore
from tests.support.broadcast import (
    WalMessages,
    assert_broadcast_once_in_feed_order,
    feed_order,
    relay_checkpoint,
    relay_process,
    relay_until_idle,
    running_relay,
    tenant_topic,
)
from tests.support.processes import run_intent
from tests.support.streams import append, new_stream, received
from tests.support.telemetry import metric_points
from tests.support.waiting import until

pytestmark = pytest.mark.integration

FOLLOW_SECONDS = 60.0  # a deadline for the waits below, not a measure


async def write(store: PostgresEventStore, tenant: UUID, appends: int, *,
                streams: int = 3, pause: float = 0.0) -> None:
    """`appends` appends of 1 to 3 events each, round robin over fresh streams of `tenant`."""
    made = [new_stream(tenant) for _ in range(streams)]
    versions = dict.fromkeys(made, 0)
    for n in range(appends):
        stream = made[n % streams]
        first = versions[stream] + 1
        await append(store, [received(stream, v) for v in range(first, first + 1 + n % 3)],
                     expected=versions[stream])
        versions[stream] += 1 + n % 3
        if pause:
            await asyncio.sleep(pause)


def sent_for(wal: WalMessages, tenants: list[UUID]) -> int:
    """Messages seen so far on the tenants' own topics."""
    return sum(len(found) for found in wal.on_topics(tenant_topic(t) for t in tenants).values())


async def all_sent(wal: WalMessages, pool: AsyncConnectionPool[Conn], tenants: list[UUID]
                   ) -> bool:
    await wal.read()
    return sent_for(wal, tenants) >= len(await feed_order(pool, tenants))



async def test_every_committed_event_is_broadcast_once_on_both_topics_in_feed_order(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
) -> None:
    tenants = [uuid4(), uuid4()]
    async with WalMessages(database_url) as wal:
        async with running_relay(runtime_pool):
            # Four writers at once, two per tenant, appends of 1 to 3 events.
            await asyncio.gather(*(write(store, t, 8) for t in tenants for _ in range(2)))
            await until(lambda: all_sent(wal, runtime_pool, tenants), FOLLOW_SECONDS,
                        "every event to be broadcast")
        assert await relay_until_idle(runtime_pool) == 0  # nothing left over...
        await wal.read()
    events = await feed_order(runtime_pool, tenants)
    assert len(events) == 4 * (1 + 2 + 3 + 1 + 2 + 3 + 1 + 2)
    assert_broadcast_once_in_feed_order(wal, events)  # ...and nothing sent twice


async def test_an_event_whose_transaction_commits_late_is_held_back_then_relayed_in_order(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
) -> None:
    tenant = uuid4()
    async with WalMessages(database_url) as wal:
        async with await psycopg.AsyncConnection.connect(database_url) as late:
            await late.execute("select pg_current_xact_id()")  # its id comes first
            early = await append(store, [received(new_stream(tenant), 1)])  # commits first
            await relay_until_idle(runtime_pool)
            await wal.read()
            assert sent_for(wal, [tenant]) == 0, "relayed past a transaction still open"
            held = await append(store, [received(new_stream(tenant), 1)], conn=late)
            await late.commit()
        await relay_until_idle(runtime_pool)
        await wal.read()
    events = await feed_order(runtime_pool, [tenant])
    # The late commit sorts first in the feed, and is broadcast first, not skipped.
    assert [e[0] for e in events] == [held[0].event_id, early[0].event_id]
    assert_broadcast_once_in_feed_order(wal, events)


async def test_a_relay_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
    tmp_path: Path,
) -> None:
    tenant = uuid4()
    await relay_until_idle(pool)  # what other tests left: the process relays only ours
    async with WalMessages(database_url) as wal:
        writing: asyncio.Task[None] | None = None
        try:
            async with relay_process(database_url, tmp_path, "--page", "7",
                                     "--idle", "0.01") as first:
                writing = asyncio.create_task(write(store, tenant, 150, streams=5, pause=0.03))

                async def under_way() -> bool:
                    await wal.read()
                    return sent_for(wal, [tenant]) >= 40

                await until(under_way, FOLLOW_SECONDS, "the first relay to be under way")
                first.send_signal(signal.SIGKILL)
                first.wait(timeout=10)
            assert not writing.done(), "the events were all appended before the kill"
            async with relay_process(database_url, tmp_path, "--page", "7",
                                     "--idle", "0.01") as second:
                await writing
                await until(lambda: all_sent(wal, pool, [tenant]), FOLLOW_SECONDS,
                            "the restarted relay to catch up")
                second.send_signal(signal.SIGTERM)
                assert second.wait(timeout=20) == 0
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
        await wal.read()
    events = await feed_order(pool, [tenant])
    assert len(events) == 50 * (1 + 2 + 3)
    assert_broadcast_once_in_feed_order(wal, events)


async def test_two_relays_at_once_broadcast_each_event_once(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
) -> None:
    tenants = [uuid4(), uuid4(), uuid4()]
    async with WalMessages(database_url) as wal:
        async with (running_relay(runtime_pool, page=3, idle_seconds=0.005) as one,
                    running_relay(runtime_pool, page=3, idle_seconds=0.005) as two):
            await asyncio.gather(*(write(store, t, 12) for t in tenants))
            await until(lambda: all_sent(wal, runtime_pool, tenants), FOLLOW_SECONDS,
                        "every event to be broadcast")
        await wal.read()
    events = await feed_order(runtime_pool, tenants)
    assert one.relayed + two.relayed >= len(events)
    assert_broadcast_once_in_feed_order(wal, events)


async def test_a_second_relay_passes_nothing_while_the_first_holds_the_checkpoint(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore,
) -> None:
    await relay_until_idle(runtime_pool)
    stream = new_stream(uuid4())
    await append(store, [received(stream, 1), received(stream, 2)])
    second = BroadcastRelay(runtime_pool)
    async with runtime_pool.connection() as first, first.transaction():
        cur = await first.execute("select relayed from intent.relay_broadcasts(1)")
        assert await cur.fetchone() == (1,)
        assert await second.relay_once() == 0  # one event waits, but the checkpoint is taken
    assert await second.relay_once() == 1


async def test_a_failing_message_insert_moves_nothing_and_everything_goes_once_it_is_fixed(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    tenant, schema = uuid4(), f"relay_fault_{uuid4().hex[:8]}"
    await relay_until_idle(runtime_pool)
    conn.execute(f"""
        create schema {schema};
        create function {schema}.refuse() returns trigger language plpgsql as $$
        begin raise exception 'no partition for today (test)'; end $$;
        create trigger {schema}_refuse before insert on realtime.messages
          for each statement execute function {schema}.refuse();""")
    try:
        async with WalMessages(database_url) as wal:
            await write(store, tenant, 4)
            before, _ = await relay_checkpoint(runtime_pool)
            with pytest.raises(psycopg.errors.RaiseException, match="no partition"):
                await BroadcastRelay(runtime_pool).relay_once()
            assert (await relay_checkpoint(runtime_pool))[0] == before
            async with running_relay(runtime_pool):

                async def noted() -> bool:
                    _, error = await relay_checkpoint(runtime_pool)
                    return error is not None and "no partition" in error["message"]

                await until(noted, FOLLOW_SECONDS, "the relay to note its error")
                assert (await relay_checkpoint(runtime_pool))[0] == before
                conn.execute(f"drop trigger {schema}_refuse on realtime.messages")
                await until(lambda: all_sent(wal, runtime_pool, [tenant]), FOLLOW_SECONDS,
                            "the relay to send what had waited")
            await wal.read()
        assert (await relay_checkpoint(runtime_pool))[1] is None  # the error is cleared
        assert_broadcast_once_in_feed_order(wal, await feed_order(runtime_pool, [tenant]))
    finally:
        conn.execute(f"drop trigger if exists {schema}_refuse on realtime.messages")
        conn.execute(f"drop schema {schema} cascade")


async def test_the_relays_checkpoint_and_lag_show_in_intent_status(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore, database_url: str,
) -> None:
    async def status() -> tuple[int, dict[str, Any], list[str]]:
        result = await asyncio.to_thread(
            run_intent, "status", "--database-url", database_url, "--json", "--no-temporal",
            "--relay-behind-after", "0", timeout=120)
        report = json.loads(result.stdout)
        relay = {c["consumer"]: c for c in report["consumers"]}[CONSUMER]
        return result.returncode, relay, report["attention"]

    await relay_until_idle(runtime_pool)
    await write(store, uuid4(), 3)  # 1 + 2 + 3 events
    code, relay, attention = await status()
    assert relay["kind"] == "broadcast relay"
    assert relay["lag_events"] >= 6
    assert relay["lag_seconds"] > 0
    assert code == 1
    assert any("Realtime is" in note and "intent relay" in note for note in attention)
    await relay_until_idle(runtime_pool)
    code, relay, attention = await status()
    position, _ = await relay_checkpoint(runtime_pool)
    assert relay["checkpoint"] == f"{position.transaction_id}/{position.position}"
    assert relay["lag_events"] == 0
    assert not any("Realtime is" in note for note in attention)


async def test_a_relay_call_that_sends_is_one_span_and_the_lag_is_a_gauge(
    runtime_pool: AsyncConnectionPool[Conn], store: PostgresEventStore,
    spans: InMemorySpanExporter,
) -> None:
    await relay_until_idle(runtime_pool)
    spans.clear()
    assert await BroadcastRelay(runtime_pool).relay_once() == 0
    assert spans.get_finished_spans() == ()  # an idle call is no span
    await write(store, uuid4(), 2)  # 1 + 2 events
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    try:
        await sample_broadcast_lag(runtime_pool)
        waiting = metric_points(reader)
        assert await BroadcastRelay(runtime_pool).relay_once() == 3
        await sample_broadcast_lag(runtime_pool)
        caught_up = metric_points(reader)
    finally:
        telemetry.use_meter_provider(None)
    (span,) = spans.get_finished_spans()
    assert span.name == "intent.broadcast.relay"
    assert span.attributes is not None
    assert span.attributes["intent.broadcast.events"] == 3
    assert [v for _, v in waiting["intent.broadcast.lag.events"]] == [3]
    (seconds,) = [v for _, v in waiting["intent.broadcast.lag.seconds"]]
    assert seconds > 0
    assert [v for _, v in caught_up["intent.broadcast.lag.events"]] == [0]


@pytest.mark.parametrize("role", ["authenticated", "anon"])
async def test_clients_can_neither_relay_nor_read_the_relays_lag(
    database_url: str, role: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute(f"set role {role}")
        for call in ("select * from intent.relay_broadcasts()",
                     "select * from intent.broadcast_lag()",
                     "select * from intent.broadcast_cutover"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute(call)
