"""The websockets of `intent bench realtime`, speaking the Phoenix protocol (vsn 1.0.0) as
supabase-py does: join channels, send heartbeats and broadcasts, and record when each
message arrives."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tools.bench.database import BenchError
from tools.bench.realtime.plan import HEARTBEAT_SECONDS, JOIN_SECONDS


class BenchRealtimeError(BenchError):
    """The realtime path could not be set up (gateway, join refused): exit 3, not a figure."""


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


async def open_socket(session: aiohttp.ClientSession, url: str, token: str) -> Subscriber:
    ws = await session.ws_connect(f"{url}?apikey={token}&vsn=1.0.0", max_msg_size=0)
    subscriber = Subscriber(ws)
    subscriber.start()
    return subscriber


async def heartbeats(sockets: list[Subscriber]) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        for socket in sockets:
            if not socket.ws.closed:
                await socket.push("phoenix", "heartbeat", {})

