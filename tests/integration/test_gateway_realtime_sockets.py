"""/realtime/v1 at the wire: the upgrade's checks, frames no client would send, the HTTP
broadcast API and a subscriber that stops reading. Raw websockets where the clients hide
the detail; an official client alongside, to show the others keep working."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from uuid import uuid4

import aiohttp
import jwt
import psycopg
import pytest
import websockets

from tests.support.realtime import WAIT_SECONDS, Agent, JsAgent, PyAgent, kind, realtime_gateway
from tools.gateway.realtime.frames import (
    V1,
    V2,
    Message,
    decode_text,
    encode_text,
)
from tools.gateway.testing import RunningGateway, running_gateway
from tools.local.keys import LOCAL_JWT_SECRET, anon_key, service_role_key, user_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(database_url: str) -> Iterator[RunningGateway]:
    with realtime_gateway(database_url) as running:
        yield running


def ws_url(gateway: RunningGateway, vsn: str = V1, key: str | None = None) -> str:
    base = gateway.url.replace("http://", "ws://") + "/realtime/v1/websocket"
    return f"{base}?apikey={key or anon_key()}&vsn={vsn}"


class Raw:
    """A raw websocket speaking one protocol version, collecting what it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, vsn: str) -> None:
        self.ws = ws
        self.vsn = vsn
        self.ref = 0

    async def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None
                   ) -> str:
        self.ref += 1
        ref = str(self.ref)
        await self.ws.send_str(encode_text(
            Message(topic, event, payload, ref=ref, join_ref=join_ref or ref), self.vsn)
            if self.vsn == V2 else json.dumps({"topic": topic, "event": event,
                                                "payload": payload, "ref": ref,
                                                "join_ref": join_ref}))
        return ref

    async def next(self, predicate: Any) -> Message | bytes:
        async def find() -> Message | bytes:
            while True:
                frame = await self.ws.receive()
                if frame.type == aiohttp.WSMsgType.BINARY:
                    if predicate(frame.data):
                        return bytes(frame.data)
                    continue
                assert frame.type == aiohttp.WSMsgType.TEXT, frame
                message = decode_text(frame.data, self.vsn)
                if predicate(message):
                    return message
        return await asyncio.wait_for(find(), WAIT_SECONDS)

    async def reply_to(self, ref: str) -> Message:
        found = await self.next(lambda m: isinstance(m, Message) and m.ref == ref)
        assert isinstance(found, Message)
        assert found.event == "phx_reply"
        return found


@contextlib.asynccontextmanager
async def raw(http: aiohttp.ClientSession, url: str, vsn: str) -> AsyncIterator[Raw]:
    async with http.ws_connect(url, max_msg_size=0) as ws:
        yield Raw(ws, vsn)


# -- the upgrade --------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "words"), [
    (None, "No apikey"),
    (jwt.encode({"role": "anon", "exp": 9999999999}, "another-secret-of-at-least-32-chars!"),
     "signature"),
    (jwt.encode({"role": "anon"}, LOCAL_JWT_SECRET), "exp"),
    (user_token(uuid4(), uuid4(), expires_in=-10), "expired"),
])
async def test_the_upgrade_needs_a_valid_apikey(
        gateway: RunningGateway, http: aiohttp.ClientSession, key: str | None,
        words: str) -> None:
    url = gateway.url + "/realtime/v1/websocket?vsn=1.0.0"
    if key is not None:
        url += f"&apikey={key}"
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    async with http.get(url, headers=headers) as response:
        assert response.status == 401
        body = await response.json()
    assert words.lower() in body["error"].lower()


async def test_a_join_with_an_expired_access_token_is_refused_with_supabases_reason(
        gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with raw(http, ws_url(gateway), V1) as client:
        stale = user_token(uuid4(), uuid4(), expires_in=-30)
        ref = await client.push("realtime:stale", "phx_join",
                                {"config": {}, "access_token": stale})
        reply = await client.reply_to(ref)
    assert reply.payload["status"] == "error"
    reason = reply.payload["response"]["reason"]
    assert reason.startswith("InvalidJWTToken: Token has expired ")
    assert int(reason.split()[4]) >= 30


# -- bad frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["py", "js"])
async def test_bad_frames_get_errors_or_are_ignored_and_everyone_keeps_working(
        gateway: RunningGateway, http: aiohttp.ClientSession, client: str) -> None:
    topic = f"noisy-{uuid4().hex[:8]}"
    listener: Agent = await (PyAgent if client == "py" else JsAgent).start(gateway.url, None)
    try:
        assert await listener.subscribe("n", topic, {}) == "SUBSCRIBED"
        async with raw(http, ws_url(gateway, V1), V1) as v1, \
                raw(http, ws_url(gateway, V2), V2) as v2:
            join = await v1.push(f"realtime:{topic}", "phx_join", {"config": {}})
            assert (await v1.reply_to(join)).payload["status"] == "ok"
            join2 = await v2.push(f"realtime:{topic}", "phx_join", {"config": {}})
            assert (await v2.reply_to(join2)).payload["status"] == "ok"
            # Not JSON, wrong shapes, binary garbage: ignored.
            await v1.ws.send_str("this is not json")
            await v1.ws.send_str("[1, 2, 3]")
            await v1.ws.send_str(json.dumps({"topic": 5, "event": "x"}))
            await v2.ws.send_str(json.dumps({"topic": "a", "event": "b"}))
            await v2.ws.send_bytes(b"\x07garbage")
            await v2.ws.send_bytes(bytes([3, 200, 200, 200, 200, 200, 1]) + b"short")
            await v1.ws.send_bytes(b"\x00\x01\x02")
            # A topic not joined, an unknown event, a broken broadcast, a huge payload:
            # errors naming the problem.
            unmatched = await v1.push("realtime:never-joined", "broadcast",
                                      {"type": "broadcast", "event": "e", "payload": {}})
            assert (await v1.reply_to(unmatched)).payload == {
                "status": "error", "response": {"reason": "unmatched topic"}}
            odd = await v1.push(f"realtime:{topic}", "dance", {}, join_ref=join)
            assert "unknown event" in (await v1.reply_to(odd)).payload["response"]["reason"]
            broken = await v1.push(f"realtime:{topic}", "broadcast", ["not", "an", "object"],
                                   join_ref=join)
            assert (await v1.reply_to(broken)).payload["status"] == "error"
            huge = await v1.push(f"realtime:{topic}", "broadcast",
                                 {"type": "broadcast", "event": "big",
                                  "payload": {"blob": "x" * (1536 * 1024)}}, join_ref=join)
            too_big = await v1.reply_to(huge)
            assert too_big.payload["response"]["reason"].startswith("PayloadTooLarge")
            # Both sockets still answer, and the listener still hears them.
            beat = await v1.push("phoenix", "heartbeat", {})
            assert (await v1.reply_to(beat)).payload == {"status": "ok", "response": {}}
            await v1.push(f"realtime:{topic}", "broadcast",
                          {"type": "broadcast", "event": "after-v1", "payload": {"a": 1}},
                          join_ref=join)
            await listener.wait_for(kind("broadcast", "n", event="after-v1"))
            await v2.push(f"realtime:{topic}", "broadcast",
                          {"type": "broadcast", "event": "after-v2", "payload": {"b": 2}},
                          join_ref=join2)
            heard = await listener.wait_for(kind("broadcast", "n", event="after-v2"))
            assert heard["payload"] == {"b": 2}
            assert not v1.ws.closed
            assert not v2.ws.closed
    finally:
        await listener.close()
    bad = [e for e in gateway.log_events() if e.get("event") == "realtime_bad_frame"]
    assert bad


# -- the HTTP broadcast API ---------------------------------------------------------------


async def test_http_broadcasts_are_accepted_with_202_and_delivered(
        gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    topic = f"http-{uuid4().hex[:8]}"
    async with raw(http, ws_url(gateway, V2), V2) as listener:
        join = await listener.push(f"realtime:{topic}", "phx_join", {"config": {}})
        assert (await listener.reply_to(join)).payload["status"] == "ok"
        headers = {"apikey": anon_key(), "Authorization": f"Bearer {service_role_key()}"}
        async with http.post(gateway.url + "/realtime/v1/api/broadcast", headers=headers,
                                json={"messages": [{"topic": topic, "event": "one",
                                                    "payload": {"n": 1}}]}) as response:
            assert response.status == 202
            assert await response.read() == b""
        async with http.post(
                f"{gateway.url}/realtime/v1/api/broadcast/{topic}/events/two",
                headers=headers, json={"n": 2}) as response:
            assert response.status == 202
        frames = [await listener.next(lambda m: isinstance(m, bytes)) for _ in range(2)]
    # kind 4: 4, len(topic), len(event), len(metadata), encoding, then the fields
    for frame, event, n in zip(frames, ["one", "two"], [1, 2], strict=True):
        assert isinstance(frame, bytes)
        assert frame[0] == 4
        header_topic = frame[5:5 + frame[1]].decode()
        header_event = frame[5 + frame[1]:5 + frame[1] + frame[2]].decode()
        assert (header_topic, header_event) == (f"realtime:{topic}", event)
        assert json.loads(frame[5 + frame[1] + frame[2] + frame[3]:]) == {"n": n}
    async with http.post(gateway.url + "/realtime/v1/api/broadcast",
                            json={"messages": []}) as response:
        assert response.status == 401


# -- slow consumers -----------------------------------------------------------------------


def chunk(n: int) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "chunk" and e["payload"]["n"] == n


async def drain(client: websockets.ClientConnection) -> None:
    """Read until the server closes (ConnectionClosed says how)."""
    while True:
        await asyncio.wait_for(client.recv(), WAIT_SECONDS)


@pytest.fixture
def small_queue_gateway(database_url: str, monkeypatch: pytest.MonkeyPatch
                        ) -> Iterator[RunningGateway]:
    """A gateway of its own whose sockets may queue 16 frames."""
    monkeypatch.setenv("INTENT_REALTIME_QUEUE_FRAMES", "16")
    with running_gateway(database_url) as running:
        yield running


async def test_a_subscriber_that_stops_reading_is_dropped_and_the_others_go_on(
        small_queue_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    gateway = small_queue_gateway
    topic = f"firehose-{uuid4().hex[:8]}"
    join = {"topic": f"realtime:{topic}", "event": "phx_join", "payload": {"config": {}},
            "ref": "1", "join_ref": "1"}
    # max_queue=1: the client library stops reading the socket once one frame waits.
    slow = await websockets.connect(ws_url(gateway, V1), max_queue=1, max_size=None,
                                    compression=None)
    try:
        await slow.send(json.dumps(join))
        reply = json.loads(await slow.recv())
        assert reply["payload"]["status"] == "ok"
        listener = await PyAgent.start(gateway.url, None)
        try:
            assert await listener.subscribe("f", topic, {}) == "SUBSCRIBED"
            async with raw(http, ws_url(gateway, V1), V1) as sender:
                ref = await sender.push(f"realtime:{topic}", "phx_join", {"config": {}})
                assert (await sender.reply_to(ref)).payload["status"] == "ok"
                blob = "x" * (256 * 1024)
                dropped: list[dict[str, Any]] = []
                for n in range(2000):
                    await sender.push(f"realtime:{topic}", "broadcast",
                                      {"type": "broadcast", "event": "chunk",
                                       "payload": {"n": n, "blob": blob}}, join_ref=ref)
                    if n % 10 == 9:
                        await listener.wait_for(chunk(n))
                        dropped = [e for e in gateway.log_events()
                                   if e.get("event") == "realtime_drop"]
                        if dropped:
                            break
                assert dropped, "the slow subscriber was never dropped"
                assert dropped[0]["limit"] == 16
                # The sender and the listener go on.
                await sender.push(f"realtime:{topic}", "broadcast",
                                  {"type": "broadcast", "event": "after", "payload": {}},
                                  join_ref=ref)
                await listener.wait_for(lambda e: e.get("event") == "after")
                beat = await sender.push("phoenix", "heartbeat", {})
                assert (await sender.reply_to(beat)).payload["status"] == "ok"
        finally:
            await listener.close()
        # The slow one gets what was on the wire, then a close with a code and a reason.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await drain(slow)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert closed.value.rcvd.reason.startswith("slow consumer")
    finally:
        await slow.close()


# -- the change feed's slot ---------------------------------------------------------------


def test_the_change_feed_slot_is_temporary_and_gone_when_the_gateway_stops(
        database_url: str) -> None:
    with running_gateway(database_url) as running:
        started: list[dict[str, Any]] = []
        for _ in range(600):
            started = [e for e in running.log_events()
                       if e.get("event") == "realtime_feed_started"]
            if started:
                break
            time.sleep(0.1)
        assert started, running.log_events()
        slot = started[0]["slot"]
        with psycopg.connect(database_url) as conn:
            row = conn.execute("select temporary, plugin from pg_replication_slots"
                               " where slot_name = %s", (slot,)).fetchone()
        assert row == (True, "wal2json")
    with psycopg.connect(database_url) as conn:
        left = conn.execute("select count(*) from pg_replication_slots where slot_name = %s",
                            (slot,)).fetchone()
    assert left == (0,)


# -- idle sockets -------------------------------------------------------------------------


@pytest.fixture
def impatient_gateway(database_url: str, monkeypatch: pytest.MonkeyPatch
                      ) -> Iterator[RunningGateway]:
    """A gateway of its own that closes sockets silent for 1 s (60 s by default)."""
    monkeypatch.setenv("INTENT_REALTIME_IDLE_SECONDS", "1")
    with running_gateway(database_url) as running:
        yield running


async def test_a_socket_without_heartbeats_is_closed(
        impatient_gateway: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(ws_url(impatient_gateway, V1)) as ws:
        frame = await asyncio.wait_for(ws.receive(), WAIT_SECONDS)
    assert frame.type == aiohttp.WSMsgType.CLOSE
    assert (frame.data, frame.extra) == (1000, "heartbeat timeout")
