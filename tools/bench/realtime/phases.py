"""The phases of `intent bench realtime`: at one fan-out, the subscribers join, then the
Intent phase (events appended) and the baseline phase (broadcasts relayed) run in turn,
each at the plan's rate, and every delivery is collected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import aiohttp
from rich.progress import Progress

from pump.store.events import PostgresEventStore
from tools.bench.progress import add_task, advance, remove_task
from tools.bench.realtime.plan import BASELINE_TOPIC, JOIN_BATCH, SETTLE_SECONDS, Plan
from tools.bench.realtime.results import Phase
from tools.bench.realtime.sockets import Subscriber, heartbeats, open_socket
from tools.bench.workload import item_events, new_stream
from tools.local.keys import user_token


async def run_fanout(
    session: aiohttp.ClientSession,
    url: str,
    pool: Any,
    tenant: UUID,
    fanout: int,
    plan: Plan,
    progress: Progress | None,
    *,
    baseline_first: bool,
) -> list[Phase]:
    task = add_task(progress, f"{fanout} subscribers: joining", fanout)
    subscribers: list[Subscriber] = []
    sender: Subscriber | None = None
    heartbeat: asyncio.Task[None] | None = None

    async def subscribe() -> None:
        token = user_token(tenant, uuid4())
        subscriber = await open_socket(session, url, token)
        subscribers.append(subscriber)
        await subscriber.join(f"intent:tenant:{tenant}", private=True, token=token)
        await subscriber.join(BASELINE_TOPIC, private=False, token=token)
        advance(progress, task)

    try:
        for start in range(0, fanout, JOIN_BATCH):
            await asyncio.gather(*(subscribe() for _ in range(min(JOIN_BATCH, fanout - start))))
        sender_token = user_token(tenant, uuid4())
        sender = await open_socket(session, url, sender_token)
        await sender.join(BASELINE_TOPIC, private=False, token=sender_token)
        # As the clients do: without heartbeats the gateway closes a silent socket.
        heartbeat = asyncio.create_task(heartbeats([*subscribers, sender]))
        remove_task(progress, task)
        sides: list[Callable[[], Any]] = [
            lambda: _intent_phase(pool, tenant, subscribers, plan, progress),
            lambda: _baseline_phase(sender, subscribers, plan, progress),
        ]
        if baseline_first:
            sides.reverse()
        return [await side() for side in sides]
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        for socket in [*subscribers, *([sender] if sender else [])]:
            await socket.ws.close()
            if socket.reader is not None:
                await asyncio.gather(socket.reader, return_exceptions=True)


async def _paced(count: int, rate: float, send: Callable[[int], Any],
                 progress: Progress | None, title: str) -> None:
    task = add_task(progress, title, count)
    began = time.monotonic()
    for n in range(count):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(n)
        advance(progress, task)
    remove_task(progress, task)


async def _intent_phase(pool: Any, tenant: UUID, subscribers: list[Subscriber], plan: Plan,
                        progress: Progress | None) -> Phase:
    store = PostgresEventStore(pool)
    committed: dict[str, float] = {}

    async def append(_: int) -> None:
        stream = new_stream(tenant)
        (event,) = item_events(stream, 1)
        await store.append(stream, 0, [event])
        committed[str(event.event_id)] = time.time()

    began = time.monotonic()
    await _paced(plan.messages, plan.rate, append, progress,
                 f"{len(subscribers)} subscribers: events appended")
    return await _collect("intent", committed, subscribers, began)


async def _baseline_phase(sender: Subscriber, subscribers: list[Subscriber], plan: Plan,
                          progress: Progress | None) -> Phase:
    sent: dict[str, float] = {}
    run = uuid4().hex[:8]

    async def send(n: int) -> None:
        key = f"{run}-{n}"
        sent[f"seq:{key}"] = time.time()
        await sender.push(f"realtime:{BASELINE_TOPIC}", "broadcast",
                          {"type": "broadcast", "event": "tick", "payload": {"seq": key}})

    began = time.monotonic()
    await _paced(plan.messages, plan.rate, send, progress,
                 f"{len(subscribers)} subscribers: baseline broadcasts")
    return await _collect("baseline", sent, subscribers, began)


async def _collect(side: str, started: dict[str, float], subscribers: list[Subscriber],
                   began: float) -> Phase:
    """Wait (bounded) until every subscriber has every message; then the figures."""
    deadline = time.monotonic() + SETTLE_SECONDS
    keys = set(started)
    while time.monotonic() < deadline:
        if all(keys <= s.received.keys() for s in subscribers):
            break
        await asyncio.sleep(0.02)
    seconds = time.monotonic() - began
    latencies: list[float] = []
    missed = duplicates = 0
    for subscriber in subscribers:
        for key in keys:
            arrivals = subscriber.received.pop(key, None)
            if not arrivals:
                missed += 1
                continue
            duplicates += len(arrivals) - 1
            latencies.append((arrivals[0] - started[key]) * 1000)
    return Phase(side, len(subscribers), len(keys), latencies, missed, duplicates, seconds)
