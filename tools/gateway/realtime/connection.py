"""One websocket: its channels (by topic), its bounded outbound queue and writer.

Writes go through a bounded queue drained by the connection's own writer task, so fan-out
never waits for a client: a socket whose queue fills up is dropped with close code 1013 and
a reason, instead of being buffered without bound. A channel's token expiry is a timer here.
What the client's frames do is dispatch.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from typing import Any

from aiohttp import WSCloseCode, web

from pump.observability import telemetry
from tools.gateway.auth import Caller
from tools.gateway.realtime.frames import Message, encode_text
from tools.gateway.realtime.hub import Channel
from tools.gateway.realtime.service import RealtimeService
from tools.gateway.shared import log_event

# Frames a socket may have waiting before it counts as a slow consumer and is dropped.
QUEUE_FRAMES = int(os.environ.get("INTENT_REALTIME_QUEUE_FRAMES", "1024"))
# ... or this many bytes (a frame larger than this alone is still sent, on an empty queue).
QUEUE_BYTES = int(os.environ.get("INTENT_REALTIME_QUEUE_BYTES", str(16 * 1024 * 1024)))
SLOW_CONSUMER = WSCloseCode.TRY_AGAIN_LATER  # 1013


class Connection:
    """One websocket: its channels (by topic), its bounded outbound queue and writer."""

    _ids = itertools.count(1)

    def __init__(self, service: RealtimeService, ws: web.WebSocketResponse, vsn: str,
                 caller: Caller, request: web.Request) -> None:
        self.id = next(Connection._ids)
        self.service = service
        self.ws = ws
        self.vsn = vsn
        self.caller = caller
        self._transport = request.transport
        self.channels: dict[str, Channel] = {}
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue(maxsize=QUEUE_FRAMES)
        self.queued_bytes = 0
        self.dropped = False
        self.frames_sent = 0
        self.bad_frames = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._writer = asyncio.create_task(self._write(), name=f"realtime-writer-{self.id}")
        self._closing: asyncio.Task[None] | None = None
        if (metrics := telemetry.instruments()) is not None:
            metrics.realtime_connections.add(1)

    # -- output ---------------------------------------------------------------------------

    def enqueue(self, frame: str | bytes) -> None:
        """Queue a frame for the writer; never waits. A full queue drops the socket."""
        if self.dropped:
            return
        size = len(frame)
        if self.queued_bytes + size > QUEUE_BYTES and not self.queue.empty():
            self.drop()
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.drop()
            return
        self.queued_bytes += size

    def push(self, message: Message) -> None:
        self.enqueue(encode_text(message, self.vsn))

    def reply(self, request: Message, payload: dict[str, Any]) -> None:
        self.push(Message(request.topic, "phx_reply", payload, ref=request.ref,
                          join_ref=request.join_ref))

    async def _write(self) -> None:
        while True:
            frame = await self.queue.get()
            self.queued_bytes -= len(frame)
            if isinstance(frame, bytes):
                await self.ws.send_bytes(frame)
            else:
                await self.ws.send_str(frame)
            self.frames_sent += 1

    def drop(self) -> None:
        """The client does not read fast enough: stop queueing for it and close it with a
        reason it can see once it has read what is already on the wire."""
        if self.dropped:
            return
        self.dropped = True
        queued = self.queue.qsize()
        if (metrics := telemetry.instruments()) is not None:
            metrics.realtime_drops.add(1)
        log_event("realtime_drop", logging.WARNING, connection=self.id, queued_frames=queued,
                  queued_bytes=self.queued_bytes, limit=QUEUE_FRAMES, limit_bytes=QUEUE_BYTES,
                  channels=sorted(self.channels))
        self._closing = asyncio.create_task(self._close_slow(queued))

    async def _close_slow(self, queued: int) -> None:
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0
        reason = (f"slow consumer: {queued} frames waiting "
                  f"(limits {QUEUE_FRAMES} frames, {QUEUE_BYTES} bytes)")
        await self.close(SLOW_CONSUMER, reason, seconds=30)

    async def close(self, code: int, reason: str, *, seconds: float) -> None:
        """Close with a code and reason; a client that does not take the close frame in
        time (its buffers are full) is cut off."""
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), seconds)
        except (TimeoutError, Exception):
            if self._transport is not None:
                self._transport.abort()

    async def finish(self) -> None:
        """The socket is gone: leave every channel (presence leaves go out to the rest)."""
        if (metrics := telemetry.instruments()) is not None:
            metrics.realtime_connections.add(-1)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for channel in list(self.channels.values()):
            self.service.leave(channel)
        self.channels.clear()
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await self._closing
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._writer

    # -- channels -------------------------------------------------------------------------

    def remove(self, channel: Channel) -> None:
        timer = self._timers.pop(id(channel), None)
        if timer is not None:
            timer.cancel()
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
        self.service.leave(channel)

    def arm_expiry(self, channel: Channel) -> None:
        """A timer to the token's `exp`: then the channel is closed, as Supabase does."""
        old = self._timers.pop(id(channel), None)
        if old is not None:
            old.cancel()
        exp = channel.claims.get("exp")
        if not isinstance(exp, int | float):
            return
        try:
            delay = max(0.0, float(exp) - time.time())
        except OverflowError:  # an `exp` beyond any date (a huge integer): never expires
            return
        loop = asyncio.get_running_loop()
        self._timers[id(channel)] = loop.call_later(
            delay, self.expire, channel, "Token has expired 0 seconds ago")

    def expire(self, channel: Channel, reason: str) -> None:
        """The channel's token is no longer good: a system error, then phx_close."""
        if self.channels.get(channel.topic) is not channel:
            return
        self.push(Message(channel.topic, "system", {
            "extension": "system", "status": "error", "message": reason,
            "channel": channel.name}))
        self.push(Message(channel.topic, "phx_close", {}, join_ref=channel.join_ref))
        log_event("realtime_token_expired", connection=self.id, topic=channel.topic,
                  reason=reason)
        self.remove(channel)
