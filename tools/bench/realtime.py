"""`intent bench realtime`: from an event's commit to its delivery at N subscribers.

Setup: the local gateway as its own process (as `intent gateway` runs it) on the benchmark's
database; N websockets (vsn 1.0.0, as supabase-py speaks it), each signed in as a user of one
fresh tenant and joined to two channels: the tenant's private topic
`intent:tenant:<tenant>` (what the events trigger broadcasts into) and a public topic for
the baseline.

Per fan-out N, two phases of E messages at a fixed rate, in alternating order:
- Intent: one event appended per transaction (`PostgresEventStore.append`, a fresh item
  stream each); the clock starts when the append's COMMIT has returned. The event goes
  trigger -> realtime.messages -> WAL (wal2json) -> the gateway -> every subscriber.
- Baseline (fan-out only): one more socket sends a `broadcast` on the public topic, stamped
  just before it is sent; the gateway relays it to the N subscribers. The same sockets and
  the same relay, without the database path.

Latency = receive time - start time, per (message, subscriber), on one clock (one process).
The subscribers run in the benchmark's own event loop, so at large N the client's own
receive work is part of the figure. A phase ends when every subscriber has every message
or a few seconds after the last one was sent; a missing delivery is counted, never waited
for without bound.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import aiohttp
from rich.progress import Progress, TaskID
from rich.table import Table

from pump.database import open_pool
from pump.event_store import PostgresEventStore
from tools.bench.append import BenchError, server_facts
from tools.bench.stats import json_name, outcome_line, report_header, server_line, verdict
from tools.bench.workload import item_events, new_stream
from tools.local_keys import user_token

TARGET_P50_MS = 100.0
TARGET_P99_MS = 300.0
TARGET_FANOUT = 100
# How long a phase waits for late deliveries after its last message.
SETTLE_SECONDS = 5.0
JOIN_SECONDS = 60.0
BASELINE_TOPIC = "bench-fanout"
JOIN_BATCH = 20  # subscribers joining at once
HEARTBEAT_SECONDS = 20.0  # realtime-js sends one every 25 s


@dataclass(frozen=True)
class Plan:
    name: str
    fanouts: tuple[int, ...]
    messages: int  # per phase
    rate: float  # messages per second

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "fanouts": list(self.fanouts), "messages": self.messages,
                "rate_per_s": self.rate}


FULL = Plan("full", fanouts=(1, 100, 1000), messages=200, rate=20.0)
QUICK = Plan("quick", fanouts=(1, 10), messages=20, rate=20.0)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0.5, 0.99) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Phase:
    """One side at one fan-out: latencies in ms of every delivery, and what never came."""

    side: str
    fanout: int
    messages: int
    latencies_ms: list[float]
    missed: int
    duplicates: int
    seconds: float

    @property
    def delivered(self) -> int:
        return len(self.latencies_ms)

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.50) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99) if self.latencies_ms else float("nan")

    @property
    def deliveries_per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "side": self.side, "fanout": self.fanout, "messages": self.messages,
            "delivered": self.delivered, "missed": self.missed, "duplicates": self.duplicates,
            "p50_ms": round(self.p50, 2), "p99_ms": round(self.p99, 2),
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
            "deliveries_per_s": round(self.deliveries_per_second, 1),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Subscriber:
    """One websocket: joins channels, answers nothing, records when each message arrives."""

    ws: aiohttp.ClientWebSocketResponse
    received: dict[str, list[float]] = field(default_factory=dict)
    _replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ref: int = 0
    reader: asyncio.Task[None] | None = None
    closed: str | None = None

    def start(self) -> None:
        self.reader = asyncio.create_task(self._read())

    async def push(self, topic: str, event: str, payload: dict[str, Any]) -> str:
        self._ref += 1
        ref = str(self._ref)
        frame = {"topic": topic, "event": event, "payload": payload, "ref": ref,
                 "join_ref": ref if event == "phx_join" else None}
        await self.ws.send_str(json.dumps(frame))
        return ref

    async def join(self, topic: str, *, private: bool, token: str) -> None:
        config = {"broadcast": {"self": False, "ack": False},
                  "presence": {"key": "", "enabled": False},
                  "postgres_changes": [], "private": private}
        ref = await self.push(f"realtime:{topic}", "phx_join",
                              {"config": config, "access_token": token})
        reply = await self._reply(ref)
        if reply.get("status") != "ok":
            raise BenchRealtimeError(f"join of {topic} refused: {reply.get('response')}")

    async def _reply(self, ref: str) -> dict[str, Any]:
        future = self._replies.setdefault(ref, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(future, JOIN_SECONDS)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.time()
            frame = json.loads(message.data)
            event, payload = frame.get("event"), frame.get("payload") or {}
            if event == "phx_reply":
                ref = str(frame.get("ref"))
                future = self._replies.setdefault(
                    ref, asyncio.get_running_loop().create_future())
                if not future.done():
                    future.set_result(payload)
            elif event == "broadcast":
                key = _message_key(payload.get("payload") or {})
                if key is not None:
                    self.received.setdefault(key, []).append(now)
        self.closed = f"closed ({self.ws.close_code})"


def _message_key(body: dict[str, Any]) -> str | None:
    if "event_id" in body:
        return str(body["event_id"])
    if "seq" in body:
        return f"seq:{body['seq']}"
    return None


class BenchRealtimeError(BenchError):
    """The realtime path could not be set up (gateway, join refused): exit 3, not a figure."""


@dataclass
class Results:
    plan: Plan
    phases: list[Phase]
    server: dict[str, Any]
    tenant_id: UUID
    started_at: datetime
    finished_at: datetime

    def phase(self, side: str, fanout: int) -> Phase | None:
        return next((p for p in self.phases if p.side == side and p.fanout == fanout), None)

    @property
    def targets(self) -> list[dict[str, Any]]:
        judged = self.phase("intent", TARGET_FANOUT)
        if judged is None:  # a quick run: judged at its largest fan-out instead
            judged = max((p for p in self.phases if p.side == "intent"),
                         key=lambda p: p.fanout)
        no_miss = all(p.missed == 0 for p in self.phases if p.side == "intent")
        return [
            {"target": f"p50 at {judged.fanout} subscribers, ms", "max": TARGET_P50_MS,
             "value": round(judged.p50, 2), "met": judged.p50 <= TARGET_P50_MS},
            {"target": f"p99 at {judged.fanout} subscribers, ms", "max": TARGET_P99_MS,
             "value": round(judged.p99, 2), "met": judged.p99 <= TARGET_P99_MS},
            {"target": "no subscriber misses an event", "max": 0,
             "value": sum(p.missed for p in self.phases if p.side == "intent"),
             "met": no_miss},
        ]

    @property
    def all_met(self) -> bool:
        return all(t["met"] for t in self.targets)

    def as_json(self, database: dict[str, Any]) -> dict[str, Any]:
        return {
            **report_header(
                "realtime", self.started_at, self.finished_at, self.plan.as_json(),
                {**database, **self.server, "tenant_id": str(self.tenant_id)}, __doc__,
            ),
            "phases": [p.as_json() for p in self.phases],
            "targets": self.targets,
        }


def _raise_open_files(wanted: int) -> None:
    """Each subscriber is a socket here and one in the gateway (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


async def _open(session: aiohttp.ClientSession, url: str, token: str) -> Subscriber:
    ws = await session.ws_connect(f"{url}?apikey={token}&vsn=1.0.0", max_msg_size=0)
    subscriber = Subscriber(ws)
    subscriber.start()
    return subscriber


async def run_realtime(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    from tools.gateway.testing import GatewayStartError, running_gateway

    started = datetime.now(UTC)
    server = await server_facts(url)
    _raise_open_files(4 * max(plan.fanouts) + 256)
    tenant = uuid4()
    phases: list[Phase] = []
    pool = await open_pool(url, min_size=1, max_size=2, name="bench-realtime")
    try:
        with running_gateway(url) as gateway:
            socket_url = gateway.url.replace("http://", "ws://") + "/realtime/v1/websocket"
            # No pool limit: each subscriber holds its connection for the whole phase.
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                for number, fanout in enumerate(plan.fanouts):
                    phases += await _fanout(
                        session, socket_url, pool, tenant, fanout, plan, progress,
                        baseline_first=bool(number % 2),
                    )
    except GatewayStartError as exc:  # raised only while it starts
        raise BenchRealtimeError(f"the local gateway did not start: {exc}") from None
    finally:
        await pool.close()
    return Results(plan, phases, server, tenant, started, datetime.now(UTC))


async def _fanout(
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
    task = _task(progress, f"{fanout} subscribers: joining", fanout)
    subscribers: list[Subscriber] = []
    sender: Subscriber | None = None
    heartbeat: asyncio.Task[None] | None = None

    async def subscribe() -> None:
        token = user_token(tenant, uuid4())
        subscriber = await _open(session, url, token)
        subscribers.append(subscriber)
        await subscriber.join(f"intent:tenant:{tenant}", private=True, token=token)
        await subscriber.join(BASELINE_TOPIC, private=False, token=token)
        _advance(progress, task)

    try:
        for start in range(0, fanout, JOIN_BATCH):
            await asyncio.gather(*(subscribe() for _ in range(min(JOIN_BATCH, fanout - start))))
        sender_token = user_token(tenant, uuid4())
        sender = await _open(session, url, sender_token)
        await sender.join(BASELINE_TOPIC, private=False, token=sender_token)
        # As the clients do: without heartbeats the gateway closes a silent socket.
        heartbeat = asyncio.create_task(_heartbeats([*subscribers, sender]))
        _done(progress, task)
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


async def _heartbeats(sockets: list[Subscriber]) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        for socket in sockets:
            if not socket.ws.closed:
                await socket.push("phoenix", "heartbeat", {})


async def _paced(count: int, rate: float, send: Callable[[int], Any],
                 progress: Progress | None, title: str) -> None:
    task = _task(progress, title, count)
    began = time.monotonic()
    for n in range(count):
        delay = began + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(n)
        _advance(progress, task)
    _done(progress, task)


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


def _task(progress: Progress | None, title: str, total: int) -> TaskID | None:
    return progress.add_task(title, total=total) if progress else None


def _advance(progress: Progress | None, task: TaskID | None) -> None:
    if progress is not None and task is not None:
        progress.advance(task)


def _done(progress: Progress | None, task: TaskID | None) -> None:
    if progress is not None and task is not None:
        progress.remove_task(task)


def realtime_table(results: Results) -> Table:
    plan = results.plan
    table = Table(
        title=(f"realtime: commit to delivery, {plan.messages} messages per phase at "
               f"{plan.rate:g}/s"),
        caption=("intent: event appended -> trigger -> WAL -> gateway -> sockets; baseline: a "
                 "socket's broadcast relayed by the gateway (no database)"),
    )
    for column in ("subscribers", "side", "p50 ms", "p99 ms", "max ms", "deliveries/s",
                   "missed", "p50 ÷ baseline"):
        table.add_column(column, justify="right")
    for fanout in plan.fanouts:
        intent, baseline = results.phase("intent", fanout), results.phase("baseline", fanout)
        for phase in (intent, baseline):
            if phase is None:
                continue
            ratio = ""
            if phase is intent and baseline is not None and baseline.p50:
                ratio = f"{intent.p50 / baseline.p50:.1f}"
            figures = phase.as_json()
            table.add_row(str(fanout), phase.side, f"{phase.p50:.1f}", f"{phase.p99:.1f}",
                          f"{figures['max_ms']}", f"{phase.deliveries_per_second:,.0f}",
                          str(phase.missed), ratio)
    return table


def targets_table(results: Results) -> Table:
    table = Table(title="targets")
    for column in ("target", "value", "limit", ""):
        table.add_column(column, justify="right")
    for target in results.targets:
        table.add_row(target["target"], f"{target['value']}", f"≤ {target['max']}",
                      verdict(bool(target["met"])))
    return table


def summary_lines(results: Results) -> list[str]:
    return [server_line(results.server), outcome_line(results.all_met)]


def default_json_name(now: datetime | None = None) -> str:
    return json_name("realtime", now)
