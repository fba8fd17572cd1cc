"""Realtime clients as the gateway tests drive them: one `Agent` protocol, run with either
official client — supabase-py in this process, or supabase-js under Node
(tests/integration/js/realtime_agent.js) — and the gateway those tests start."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from realtime.types import RealtimeAcknowledgementStatus
from supabase import AsyncClient, acreate_client

from tests.support.node import node
from tools.gateway.testing import RunningGateway, running_gateway
from tools.local.keys import anon_key
from tools.settings import REPO_ROOT

AGENT_JS = REPO_ROOT / "tests" / "integration" / "js" / "realtime_agent.js"
WAIT_SECONDS = 30.0
Event = dict[str, Any]


class Agent(Protocol):
    """One client connection, as the scenarios drive it."""

    events: list[Event]

    async def subscribe(self, channel: str, topic: str, config: dict[str, Any], *,
                        presence: bool = False,
                        changes: list[dict[str, Any]] | None = None) -> str: ...

    async def send(self, channel: str, event: str, payload: dict[str, Any]) -> Any: ...

    async def track(self, channel: str, payload: dict[str, Any]) -> Any: ...

    async def unsubscribe(self, channel: str) -> Any: ...

    async def set_auth(self, token: str) -> Any: ...

    async def wait_for(self, predicate: Callable[[Event], bool]) -> Event: ...

    async def close(self) -> None: ...


class _Events:
    """Everything a client saw, in order, and a way to wait for a matching one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()

    def emit(self, event: Event) -> None:
        self.events.append(event)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[Event], bool]) -> Event:
        async def seen() -> Event:
            async with self._changed:
                while True:
                    for event in self.events:
                        if predicate(event):
                            return event
                    await self._changed.wait()
        try:
            return await asyncio.wait_for(seen(), WAIT_SECONDS)
        except TimeoutError:
            raise AssertionError(
                f"no matching event in {WAIT_SECONDS} s; saw {self.events}") from None


class PyAgent(_Events):
    """supabase-py's AsyncClient (realtime 2.34), with a user token given by set_auth."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__()
        self.client = client
        self.channels: dict[str, Any] = {}
        self.acks: dict[str, bool] = {}

    @classmethod
    async def start(cls, url: str, token: str | None) -> PyAgent:
        client = await acreate_client(url, anon_key())
        if token:
            await client.realtime.set_auth(token)
        return cls(client)

    async def subscribe(self, channel: str, topic: str, config: dict[str, Any], *,
                        presence: bool = False,
                        changes: list[dict[str, Any]] | None = None) -> str:
        options: Any = {"config": {
            "broadcast": {"ack": False, "self": False},
            "presence": {"key": "", "enabled": False}, "private": False, **config}}
        ch = self.client.channel(topic, options)
        self.acks[channel] = bool(config.get("broadcast", {}).get("ack"))
        ch.on_broadcast("*", lambda m: self.emit({
            "ev": "broadcast", "channel": channel, "event": m["event"],
            "payload": m["payload"], "meta": m.get("meta")}))
        if presence:
            ch.on_presence_join(lambda key, _current, new: self.emit({
                "ev": "presence", "channel": channel, "kind": "join", "key": key,
                "metas": [_meta(p) for p in new]}))
            ch.on_presence_leave(lambda key, _current, left: self.emit({
                "ev": "presence", "channel": channel, "kind": "leave", "key": key,
                "metas": [_meta(p) for p in left]}))
        for binding in changes or []:
            ch.on_postgres_changes(
                binding["event"], lambda p: self.emit({
                    "ev": "change", "channel": channel, "type": p["data"]["type"],
                    "table": p["data"]["table"], "schema": p["data"]["schema"],
                    "record": p["data"].get("record"),
                    "old_record": p["data"].get("old_record"),
                    "commit_timestamp": p["data"]["commit_timestamp"],
                    "errors": p["data"]["errors"]}),
                table=binding.get("table"), schema=binding.get("schema"),
                filter=binding.get("filter"))
        ch.on_system(lambda p: self.emit({"ev": "system", "channel": channel,
                                          "payload": dict(p)}))
        statuses: list[str] = []

        def on_status(status: Any, error: Exception | None) -> None:
            statuses.append(str(status.value if hasattr(status, "value") else status))
            self.emit({"ev": "status", "channel": channel, "status": statuses[-1],
                       "error": str(error) if error else None})

        self.channels[channel] = ch
        await ch.subscribe(on_status)
        return statuses[0] if statuses else "NONE"

    async def send(self, channel: str, event: str, payload: dict[str, Any]) -> Any:
        ch = self.channels[channel]
        push = await ch.push("broadcast", {"type": "broadcast", "event": event,
                                           "payload": payload})
        if not self.acks[channel]:
            return "ok"
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def settle(status: str) -> Callable[[Any], None]:
            def callback(_response: Any) -> None:
                if not done.done():
                    done.set_result(status)
            return callback

        for status in (RealtimeAcknowledgementStatus.Ok, RealtimeAcknowledgementStatus.Error,
                       RealtimeAcknowledgementStatus.Timeout):
            push.receive(status, settle(str(status.value)))
        return await asyncio.wait_for(done, WAIT_SECONDS)

    async def track(self, channel: str, payload: dict[str, Any]) -> Any:
        return await self.channels[channel].track(payload)

    async def unsubscribe(self, channel: str) -> Any:
        return await self.channels[channel].unsubscribe()

    async def set_auth(self, token: str) -> Any:
        return await self.client.realtime.set_auth(token)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.realtime.close()


def _meta(presence: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(presence).items() if k != "presence_ref"}


class JsAgent(_Events):
    """supabase-js 2.119 under Node, driven over its stdin/stdout (see realtime_agent.js)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.process = process
        self._ids = itertools.count(1)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self.stderr: bytes = b""

    @classmethod
    async def start(cls, url: str, token: str | None) -> JsAgent:
        args = [str(AGENT_JS), url, anon_key()] + ([token] if token else [])
        process = await asyncio.create_subprocess_exec(
            node(), *args, cwd=REPO_ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.emit(json.loads(line))

    async def _run(self, op: str, **fields: Any) -> Any:
        assert self.process.stdin is not None
        command_id = next(self._ids)
        self.process.stdin.write((json.dumps({"id": command_id, "op": op, **fields}) + "\n")
                                 .encode())
        await self.process.stdin.drain()
        done = await self.wait_for(lambda e: e.get("ev") == "done" and e["id"] == command_id)
        assert "error" not in done, done["error"]
        return done["result"]

    async def subscribe(self, channel: str, topic: str, config: dict[str, Any], *,
                        presence: bool = False,
                        changes: list[dict[str, Any]] | None = None) -> str:
        return str(await self._run("subscribe", channel=channel, topic=topic, config=config,
                                   presence=presence, changes=changes or []))

    async def send(self, channel: str, event: str, payload: dict[str, Any]) -> Any:
        return await self._run("send", channel=channel, event=event, payload=payload)

    async def track(self, channel: str, payload: dict[str, Any]) -> Any:
        return await self._run("track", channel=channel, payload=payload)

    async def unsubscribe(self, channel: str) -> Any:
        return await self._run("unsubscribe", channel=channel)

    async def set_auth(self, token: str) -> Any:
        return await self._run("set_auth", token=token)

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def assert_no_internal_errors(gateway: RunningGateway) -> None:
    """Whatever the clients sent, the gateway logged no error of its own."""
    errors = [e for e in gateway.final_events if e.get("event") in {
        "realtime_error", "realtime_feed_error", "realtime_feed_failed", "unhandled_error",
        "realtime_rls_check_failed"}]
    assert errors == []


def kind(ev: str, channel: str, **fields: Any) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return (event.get("ev") == ev and event.get("channel") == channel
                and all(event.get(k) == v for k, v in fields.items()))
    return match


@contextlib.contextmanager
def realtime_gateway(database_url: str) -> Iterator[RunningGateway]:
    """A gateway process of its own; when it stops, it must have logged no internal error."""
    with running_gateway(database_url) as running:
        yield running
    assert_no_internal_errors(running)
