"""`/realtime/v1`: Supabase Realtime's Phoenix channels, as the current clients speak them.

One `Connection` per websocket: it reads frames in order (a join's database checks are
awaited before the next frame, as Phoenix serialises a socket's messages), and writes
through a bounded queue drained by its own writer task, so fan-out never waits for a
client: a socket whose queue fills up is dropped with close code 1013 and a reason, instead
of being buffered without bound. Broadcast and Presence live in the `Hub`; Postgres
Changes and Broadcast from Database come from the `ChangeFeed` (realtime_wal.py), checked
against each subscriber's RLS before delivery. The wire format is realtime_frames.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import psycopg
from aiohttp import WSCloseCode, WSMsgType, web
from psycopg import sql

from pump import telemetry
from tools import local_keys
from tools.gateway.app import GATEWAY, ROLE, Gateway, log_event
from tools.gateway.auth import AuthError, Caller, authenticate, verify_token
from tools.gateway.errors import json_response
from tools.gateway.limits import InputError, loads_json, read_body, text_problem
from tools.gateway.realtime_arrays import ArrayLiteralError, element_type, parse_array
from tools.gateway.realtime_filters import Binding, BindingError, binding_matches, parse_binding
from tools.gateway.realtime_frames import (
    V2,
    FrameError,
    Message,
    decode_binary,
    decode_text,
    encode_broadcast,
    encode_text,
    version_of,
)
from tools.gateway.realtime_hub import Channel, Hub, PresenceDiff
from tools.gateway.realtime_wal import MESSAGES, Change, ChangeFeed
from tools.gateway.session import SEARCH_PATH, Conn

# Frames a socket may have waiting before it counts as a slow consumer and is dropped.
QUEUE_FRAMES = int(os.environ.get("INTENT_REALTIME_QUEUE_FRAMES", "1024"))
# ... or this many bytes (a frame larger than this alone is still sent, on an empty queue).
QUEUE_BYTES = int(os.environ.get("INTENT_REALTIME_QUEUE_BYTES", str(16 * 1024 * 1024)))
# A client frame's payload above this is refused with an error reply (the socket stays).
MAX_PAYLOAD_BYTES = 1024 * 1024
# Frames above this end the socket (aiohttp closes it with 1009 before we see them).
MAX_FRAME_BYTES = 8 * MAX_PAYLOAD_BYTES
# How long a join with Postgres Changes waits for the change feed's slot to exist.
FEED_READY_SECONDS = 60.0
SLOW_CONSUMER = WSCloseCode.TRY_AGAIN_LATER  # 1013
# A socket that sends nothing (not even a heartbeat, every 25 s) for this long is closed,
# as Phoenix does.
IDLE_SECONDS = float(os.environ.get("INTENT_REALTIME_IDLE_SECONDS", "60"))
ROUTE = "/realtime/v1/websocket"

_PUBLISHED_SQL = """
select exists (
  select from pg_catalog.pg_publication_tables
   where pubname = 'supabase_realtime' and schemaname = %s and (tablename = %s or %s = '*'))
"""
# Through the catalogs, not a ::regclass cast: the gateway's login role (authenticator) has
# no USAGE on the app's schemas, and a cast would need it.
_COLUMN_SQL = """
select exists (
  select from pg_catalog.pg_attribute a
    join pg_catalog.pg_class c on c.oid = a.attrelid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
   where n.nspname = %s and c.relname = %s
     and a.attname = %s and a.attnum > 0 and not a.attisdropped)
"""
_CHECK_MESSAGE_SQL = """
insert into realtime.messages (topic, extension, event, payload, private)
values (%s, 'broadcast', 'intent.gateway.authorization', '{}'::jsonb, true) returning id
"""
_CLAIMS_SQL = """
select set_config('search_path', %s, true), set_config('role', %s, true),
       set_config('request.jwt.claims', %s, true), set_config('realtime.topic', %s, true)
"""


def _error(reason: str) -> dict[str, Any]:
    return {"status": "error", "response": {"reason": reason}}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ok(response: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": "ok", "response": response or {}}


def expired_reason(token: str) -> str:
    """Supabase's wording for an expired token: how long ago it expired, in seconds."""
    try:
        exp: Any = jwt.decode(token, options={"verify_signature": False}).get("exp")
        ago = max(0, int(time.time() - float(exp)))
    except (jwt.InvalidTokenError, TypeError, ValueError):
        ago = 0
    return f"Token has expired {ago} seconds ago"


def verify_channel_token(token: str) -> Caller:
    """The caller a channel acts as; AuthError carries Supabase's reason text."""
    try:
        return verify_token(token, secret=local_keys.LOCAL_JWT_SECRET)
    except AuthError as exc:
        if exc.expired:
            raise AuthError(expired_reason(token), expired=True) from None
        raise


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
        self.peer = request.remote
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

    # -- input ----------------------------------------------------------------------------

    async def receive(self, kind: WSMsgType, data: Any) -> None:
        try:
            if kind == WSMsgType.TEXT:
                message = decode_text(data, self.vsn)
            elif kind == WSMsgType.BINARY:
                message = decode_binary(data)
            else:
                return
        except FrameError as exc:
            self.bad_frames += 1
            if self.bad_frames <= 3 or self.bad_frames % 100 == 0:
                log_event("realtime_bad_frame", logging.WARNING, connection=self.id,
                          error=str(exc)[:200], count=self.bad_frames)
            return
        size = len(data) if isinstance(data, bytes) else len(data.encode())
        if size > MAX_PAYLOAD_BYTES:
            self.reply(message, _error(
                f"PayloadTooLarge: the message is {size} bytes; at most {MAX_PAYLOAD_BYTES}"))
            return
        await self.dispatch(message)

    async def dispatch(self, message: Message) -> None:
        if message.topic == "phoenix":
            if message.event == "heartbeat":
                self.reply(message, _ok())
            else:
                self.reply(message, _error("unmatched topic"))
            return
        if message.event == "phx_join":
            await self.join(message)
            return
        channel = self.channels.get(message.topic)
        if channel is None:
            self.reply(message, _error("unmatched topic"))
            return
        match message.event:
            case "phx_leave":
                self.remove(channel)
                self.reply(message, _ok())
            case "broadcast":
                await self.broadcast(channel, message)
            case "presence":
                await self.presence(channel, message)
            case "access_token":
                await self.refresh(channel, message)
            case _:
                self.reply(message, _error(f"unknown event {message.event[:100]!r}"))

    async def join(self, message: Message) -> None:
        topic = message.topic
        if not topic.startswith("realtime:"):
            self.reply(message, _error("unmatched topic"))
            return
        payload = message.payload if isinstance(message.payload, dict) else {}
        config = _object(payload.get("config"))
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            token = self.caller.token
        try:
            caller = verify_channel_token(token) if token else self.caller
        except AuthError as exc:
            self._refuse(message, f"InvalidJWTToken: {exc.reason}")
            return
        old = self.channels.get(topic)
        if old is not None:  # a rejoin replaces the old membership
            self.remove(old)
        presence = _object(config.get("presence"))
        broadcast = _object(config.get("broadcast"))
        key = presence.get("key")
        channel = Channel(
            owner=self, topic=topic, join_ref=message.join_ref or message.ref,
            private=config.get("private") is True, role=caller.role, claims=caller.claims,
            broadcast_self=broadcast.get("self") is True,
            broadcast_ack=broadcast.get("ack") is True,
            presence_key=key if isinstance(key, str) and key else str(uuid.uuid4()),
        )
        if channel.private and not await self.service.may_read(channel):
            self._refuse(message, "Unauthorized: You do not have permissions to read from "
                                  f"this Channel topic: {channel.name}")
            return
        raw_bindings = config.get("postgres_changes") or []
        try:
            if not isinstance(raw_bindings, list):
                raise BindingError("postgres_changes must be a list")
            channel.bindings = [parse_binding(b, i + 1) for i, b in enumerate(raw_bindings)]
            for binding in channel.bindings:
                await self.service.check_binding(binding)
        except BindingError as exc:
            self._refuse(message, str(exc))
            return
        if channel.bindings and not await self.service.feed_ready():
            self._refuse(message, "Unable to subscribe to changes: the change feed is not "
                                  f"running ({self.service.feed.failed or 'timed out'})")
            return
        self.channels[topic] = channel
        self.service.hub.add(channel)
        self.reply(message, _ok({"postgres_changes": [
            {**b.echo, "id": b.id} for b in channel.bindings]}))
        self.push(Message(topic, "presence_state",
                          self.service.hub.presence_state(channel.name, channel.private)))
        if channel.bindings:
            self.push(Message(topic, "system", {
                "extension": "postgres_changes", "status": "ok",
                "message": "Subscribed to PostgreSQL", "channel": channel.name}))
        self._arm_expiry(channel)
        log_event("realtime_join", connection=self.id, topic=topic, private=channel.private,
                  role=channel.role, bindings=len(channel.bindings), status="ok")

    def _refuse(self, message: Message, reason: str) -> None:
        self.reply(message, _error(reason))
        log_event("realtime_join", connection=self.id, topic=message.topic, status="error",
                  reason=reason)

    def remove(self, channel: Channel) -> None:
        timer = self._timers.pop(id(channel), None)
        if timer is not None:
            timer.cancel()
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
        self.service.leave(channel)

    async def broadcast(self, channel: Channel, message: Message) -> None:
        body = message.payload
        if not isinstance(body, dict) or not isinstance(body.get("event"), str):
            self.reply(message, _error("a broadcast is {type, event, payload}"))
            return
        if channel.private and channel.may_send is None:
            # Sending on a private channel needs the INSERT policies of realtime.messages,
            # checked once per channel (and again after a token refresh).
            channel.may_send = await self.service.may_write(
                Caller(channel.role, channel.claims), channel.name, body["event"],
                body.get("payload"), extension="broadcast")
        if channel.private and not channel.may_send:
            self.reply(message, _error("Unauthorized: You do not have permissions to write "
                                       f"to this Channel topic: {channel.name}"))
            return
        self.service.fan_out(channel, body["event"], body.get("payload", {}))
        if channel.broadcast_ack:
            self.reply(message, _ok())

    async def presence(self, channel: Channel, message: Message) -> None:
        body = message.payload if isinstance(message.payload, dict) else {}
        match body.get("event"):
            case "track":
                if channel.private and channel.may_track is None:
                    # Publishing presence on a private channel needs the INSERT policies of
                    # realtime.messages for extension 'presence' (once per channel and token).
                    channel.may_track = await self.service.may_write(
                        Caller(channel.role, channel.claims), channel.name, "presence",
                        body.get("payload"), extension="presence")
                if channel.private and not channel.may_track:
                    self.reply(message, _error(
                        "Unauthorized: You do not have permissions to track presence on "
                        f"this Channel topic: {channel.name}"))
                    return
                diff: PresenceDiff | None = self.service.hub.track(
                    channel, body.get("payload", {}))
            case "untrack":
                diff = self.service.hub.untrack(channel)
            case other:
                self.reply(message, _error(f"presence event must be track or untrack, "
                                           f"not {str(other)[:50]!r}"))
                return
        self.reply(message, _ok())
        if diff is not None:
            self.service.send_diff(channel.name, channel.private, diff)

    async def refresh(self, channel: Channel, message: Message) -> None:
        """A new token for the channel: its claims are what RLS sees from now on; a
        private channel is authorised again with them."""
        body = message.payload if isinstance(message.payload, dict) else {}
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            return
        try:
            caller = verify_channel_token(token)
        except AuthError as exc:
            self.expire(channel, exc.reason)
            return
        channel.role, channel.claims = caller.role, caller.claims
        channel.may_send = channel.may_track = None
        if channel.private and not await self.service.may_read(channel):
            self.expire(channel, "Unauthorized: You do not have permissions to read from "
                                 f"this Channel topic: {channel.name}")
            return
        self._arm_expiry(channel)

    def _arm_expiry(self, channel: Channel) -> None:
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


class RealtimeService:
    """Everything Realtime shares: the hub, the open connections and the change feed."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.hub = Hub()
        self.connections: set[Connection] = set()
        self.feed = ChangeFeed(gateway.config.database_url, self.deliver)

    async def feed_ready(self) -> bool:
        return await self.feed.wait_ready(seconds=FEED_READY_SECONDS)

    def leave(self, channel: Channel) -> None:
        diff = self.hub.remove(channel)
        if diff is not None:
            self.send_diff(channel.name, channel.private, diff)

    def send_diff(self, name: str, private: bool, diff: PresenceDiff) -> None:
        for member in self.hub.members(name, private):
            member.owner.push(Message(member.topic, "presence_diff", diff.payload()))

    def fan_out(self, sender: Channel, event: str, payload: Any) -> None:
        _send_broadcast(self.hub.broadcast_targets(sender), event, payload, None)

    def publish(self, name: str, private: bool, event: str, payload: Any,
                meta: dict[str, Any] | None = None) -> int:
        members = self.hub.members(name, private)
        _send_broadcast(members, event, payload, meta)
        return len(members)

    # -- database checks ------------------------------------------------------------------

    async def check_binding(self, binding: Binding) -> None:
        """Only tables of `supabase_realtime` can be subscribed, and a filter's column must
        exist; the reason is Supabase's wording."""
        filters = [binding.filter.text()] if binding.filter else []
        refusal = BindingError(
            "Unable to subscribe to changes with given parameters. Please check Realtime is "
            f"enabled for the given connect parameters: [event: {binding.event}, schema: "
            f"{binding.schema}, table: {binding.table}, filters: {filters}]")
        async with self.gateway.pool.connection() as conn:
            cursor = await conn.execute(_PUBLISHED_SQL,
                                        (binding.schema, binding.table, binding.table))
            row = await cursor.fetchone()
            if not row or not row[0]:
                raise refusal
            if binding.filter is not None:
                cursor = await conn.execute(
                    _COLUMN_SQL, (binding.schema, binding.table, binding.filter.column))
                row = await cursor.fetchone()
                if not row or not row[0]:
                    raise refusal
        if binding.table != "*":
            self.feed.forget_table(binding.schema, binding.table)

    async def may_read(self, channel: Channel) -> bool:
        """Whether the channel's role and claims pass the SELECT policies of
        realtime.messages for its topic: a probe row is written as service_role, read as
        the subscriber with `realtime.topic` set, and everything is rolled back."""
        try:
            async with self.gateway.pool.connection() as conn, \
                    conn.transaction(force_rollback=True):
                await conn.execute("select set_config('role', 'service_role', true)")
                cursor = await conn.execute(_CHECK_MESSAGE_SQL, (channel.name,))
                row = await cursor.fetchone()
                assert row is not None
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, channel.role,
                                                 json.dumps(channel.claims), channel.name))
                cursor = await conn.execute(
                    "select exists (select from realtime.messages where id = %s)", (row[0],))
                seen = await cursor.fetchone()
                return bool(seen and seen[0])
        except psycopg.Error as exc:
            log_event("realtime_authorization_error", logging.WARNING, topic=channel.topic,
                      error=" ".join(str(exc).split())[:300])
            return False

    async def may_write(self, caller: Caller, name: str, event: str, payload: Any, *,
                        extension: str) -> bool:
        """Whether the caller passes the INSERT policies of realtime.messages for a topic
        and extension (a private broadcast, or presence tracked); rolled back."""
        try:
            async with self.gateway.pool.connection() as conn, \
                    conn.transaction(force_rollback=True):
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, caller.role,
                                                 json.dumps(caller.claims), name))
                await conn.execute(
                    "insert into realtime.messages (topic, extension, event, payload, private)"
                    " values (%s, %s, %s, %s::jsonb, true)",
                    (name, extension, event,
                     json.dumps(payload if isinstance(payload, dict) else {})))
                return True
        except psycopg.Error:
            return False

    async def _visible(self, conn: Conn, channel: Channel, changes: list[tuple[int, Change]]
                       ) -> set[int]:
        """Of these changes (one table), the positions whose row the channel's role and
        claims may SELECT now, in one query, in a transaction that is rolled back."""
        first = changes[0][1]
        keys = list(first.key_types)
        if not keys:
            return set() if first.info is not None and first.info.rls else {
                i for i, _ in changes}
        rows = [{"__intent_ord": i, **{k: (c.record or {}).get(k) for k in keys}}
                for i, c in changes]
        spec = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(first.key_types[k]))
            for k in keys)
        condition = sql.SQL(" and ").join(
            sql.SQL("t.{k} = x.{k}").format(k=sql.Identifier(k)) for k in keys)
        query = sql.SQL(
            "select x.__intent_ord from jsonb_to_recordset(%s::jsonb) as x(__intent_ord int, "
            "{spec}) where exists (select from {table} t where {condition})"
        ).format(spec=spec, table=sql.Identifier(first.schema, first.table),
                 condition=condition)
        try:
            async with conn.transaction(force_rollback=True):
                await conn.execute(_CLAIMS_SQL, (SEARCH_PATH, channel.role,
                                                 json.dumps(channel.claims), ""))
                cursor = await conn.execute(query, (json.dumps(rows, default=str),))
                return {int(r[0]) for r in await cursor.fetchall()}
        except psycopg.Error as exc:
            log_event("realtime_rls_check_failed", logging.WARNING, table=first.table,
                      role=channel.role, error=" ".join(str(exc).split())[:300])
            return set()

    async def deliver(self, changes: list[Change]) -> None:
        """One poll's changes, in commit order: database broadcasts to their topic's
        subscribers; row changes to the bindings they match, when RLS lets them see it."""
        subscribers = self.hub.with_bindings()
        wanted: dict[int, list[tuple[Channel, list[int]]]] = {}
        checks: dict[tuple[str, str, str, str], list[tuple[int, Change]]] = {}
        representative: dict[tuple[str, str, str, str], Channel] = {}
        for index, change in enumerate(changes):
            if (change.schema, change.table) == MESSAGES or change.info is None:
                continue
            types = change.info.columns
            for channel in subscribers:
                ids = [b.id for b in channel.bindings if binding_matches(
                    b, change.schema, change.table, change.type, change.record,
                    change.old_record, types)]
                if not ids:
                    continue
                wanted.setdefault(index, []).append((channel, ids))
                if change.type != "DELETE":
                    group = (change.schema, change.table, channel.role,
                             json.dumps(channel.claims, sort_keys=True))
                    checks.setdefault(group, []).append((index, change))
                    representative.setdefault(group, channel)
        visible: dict[tuple[str, str, str, str], set[int]] = {}
        if checks:
            async with self.gateway.pool.connection() as conn:
                for group, items in checks.items():
                    unique = list({i: (i, c) for i, c in items}.values())
                    visible[group] = await self._visible(conn, representative[group], unique)
        for index, change in enumerate(changes):
            if (change.schema, change.table) == MESSAGES:
                self._database_broadcast(change)
                continue
            targets = wanted.get(index)
            if not targets:
                continue
            data = _change_data(change)
            for channel, ids in targets:
                if change.type != "DELETE":
                    group = (change.schema, change.table, channel.role,
                             json.dumps(channel.claims, sort_keys=True))
                    if index not in visible.get(group, set()):
                        continue
                if channel.owner.channels.get(channel.topic) is not channel:
                    continue
                _delivered("postgres_changes")
                channel.owner.push(Message(channel.topic, "postgres_changes",
                                           {"ids": ids, "data": data}))

    def _database_broadcast(self, change: Change) -> None:
        row = change.record
        if change.type != "INSERT" or row is None or row.get("extension") != "broadcast":
            return
        topic, event = row.get("topic"), row.get("event")
        if not isinstance(topic, str) or not isinstance(event, str):
            return
        payload = row.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                return
        private = row.get("private") in {True, "t", "true"}
        self.publish(topic, private, event, payload, {"id": str(row.get("id"))})


def broadcast_frame(topic: str, event: str, payload: Any, meta: dict[str, Any] | None,
                    vsn: str) -> str | bytes | None:
    """A broadcast as one protocol version gets it: kind 4 binary for 2.0.0 (what
    realtime-js expects), a text `broadcast` push for 1.0.0 (or when a field is too long
    for kind 4). A raw binary payload has no JSON form: None, 1.0.0 sockets skip it."""
    if vsn == V2:
        with contextlib.suppress(FrameError):
            return encode_broadcast(topic, event, payload, meta)
    if isinstance(payload, bytes | bytearray):
        return None
    body: dict[str, Any] = {"type": "broadcast", "event": event, "payload": payload}
    if meta:
        body["meta"] = meta
    return encode_text(Message(topic, "broadcast", body), vsn)


def _delivered(kind: str, count: int = 1) -> None:
    if count and (metrics := telemetry.instruments()) is not None:
        metrics.realtime_deliveries.add(count, {"kind": kind})


def _send_broadcast(targets: list[Channel], event: str, payload: Any,
                    meta: dict[str, Any] | None) -> None:
    """Encode once per (topic, version), however many subscribers share it."""
    _delivered("broadcast", len(targets))
    frames: dict[tuple[str, str], str | bytes | None] = {}
    for target in targets:
        connection: Connection = target.owner
        key = (target.topic, connection.vsn)
        if key not in frames:
            frames[key] = broadcast_frame(target.topic, event, payload, meta, connection.vsn)
        frame = frames[key]
        if frame is not None:
            connection.enqueue(frame)


def _change_data(change: Change) -> dict[str, Any]:
    """The `data` of a postgres_changes push, shaped as Supabase sends it."""
    assert change.info is not None
    types = change.info.columns

    def typed(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            kind = types.get(name, "")
            if kind in {"json", "jsonb"} and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            elif isinstance(value, str) and (element := element_type(kind)) is not None:
                with contextlib.suppress(ArrayLiteralError):
                    value = parse_array(value, element)
            out[name] = value
        return out

    data: dict[str, Any] = {
        "schema": change.schema, "table": change.table,
        "commit_timestamp": change.commit_timestamp, "type": change.type,
        "columns": [{"name": n, "type": t} for n, t in types.items()],
        "errors": None,
    }
    if change.record is not None:
        data["record"] = typed(change.record)
    if change.old_record is not None:
        old = typed(change.old_record)
        if change.type == "DELETE" and change.info.rls:
            old = {k: v for k, v in old.items() if k in change.info.primary_key}
        data["old_record"] = old
    return data


SERVICE = web.AppKey("realtime", RealtimeService)


async def websocket(request: web.Request) -> web.StreamResponse:
    """The upgrade: the apikey must verify (401 JSON otherwise), then the socket's loop."""
    service = request.app[SERVICE]
    try:
        vsn = version_of(request.query.get("vsn"))
    except FrameError as exc:
        return json_response({"error": str(exc)}, status=400)
    try:
        caller = authenticate(request.headers, require=True,
                              query_api_key=request.query.get("apikey"))
    except AuthError as exc:
        reason = "No apikey was given" if exc.missing else exc.reason
        return json_response({"error": reason}, status=401)
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=MAX_FRAME_BYTES, compress=False,
                               autoping=True)
    if not ws.can_prepare(request).ok:
        return json_response({"error": "expected a websocket upgrade"}, status=400)
    await ws.prepare(request)
    connection = Connection(service, ws, vsn, caller, request)
    service.connections.add(connection)
    request[ROLE] = caller.role
    log_event("realtime_open", connection=connection.id, vsn=vsn, role=caller.role,
              peer=request.remote)
    try:
        while not connection.dropped:
            try:
                frame = await ws.receive(timeout=IDLE_SECONDS)
            except TimeoutError:
                await connection.close(WSCloseCode.OK, "heartbeat timeout", seconds=5)
                break
            if frame.type in {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED}:
                break
            if frame.type in {WSMsgType.TEXT, WSMsgType.BINARY}:
                try:
                    await connection.receive(frame.type, frame.data)
                except Exception as exc:  # one bad message must not end the socket
                    log_event("realtime_error", logging.ERROR, connection=connection.id,
                              error=repr(exc))
            elif frame.type == WSMsgType.ERROR:
                break
    finally:
        service.connections.discard(connection)
        await connection.finish()
        if not ws.closed and not connection.dropped:
            await connection.close(WSCloseCode.OK, "", seconds=5)
        log_event("realtime_close", connection=connection.id, code=ws.close_code,
                  dropped=connection.dropped, frames_sent=connection.frames_sent,
                  bad_frames=connection.bad_frames)
    return ws


async def http_broadcast(request: web.Request) -> web.StreamResponse:
    """`POST /realtime/v1/api/broadcast` ({messages: [...]}) and
    `.../api/broadcast/<topic>/events/<event>` (the body is the payload): 202, no body."""
    service = request.app[SERVICE]
    try:
        caller = authenticate(request.headers, require=True,
                              query_api_key=request.query.get("apikey"))
    except AuthError as exc:
        return json_response({"error": "No apikey was given" if exc.missing else exc.reason},
                             status=401)
    topic = request.match_info.get("topic")
    try:
        body = await read_body(request)
        if topic is not None:
            event = request.match_info["event"]
            payload: Any = (body if request.content_type == "application/octet-stream"
                            else loads_json(body or b"{}"))
            messages = [{"topic": topic, "event": event, "payload": payload,
                         "private": request.query.get("private") == "true"}]
        else:
            parsed = loads_json(body or b"{}")
            listed = parsed.get("messages") if isinstance(parsed, dict) else None
            if not isinstance(listed, list):
                raise InputError("expected {\"messages\": [...]}")
            messages = listed
    except InputError as exc:
        return json_response({"error": f"invalid body: {exc}"}, status=exc.status)
    for item in messages:
        if not (isinstance(item, dict) and isinstance(item.get("topic"), str)
                and isinstance(item.get("event"), str)):
            return json_response({"error": "each message needs a topic and an event"},
                                 status=400)
        # Topics reach the database (private ones) and binary frames as UTF-8 text.
        problem = text_problem(item["topic"]) or text_problem(item["event"])
        if problem is not None:
            return json_response({"error": f"a message's topic or event {problem}"},
                                 status=400)
    for item in messages:
        name = item["topic"].removeprefix("realtime:")
        private = item.get("private") is True
        if private and not await service.may_write(caller, name, item["event"],
                                                   item.get("payload"), extension="broadcast"):
            return json_response({"error": "Unauthorized: You do not have permissions to "
                                           f"write to this Channel topic: {name}"},
                                 status=401)
        service.publish(name, private, item["event"], item.get("payload", {}))
    return web.Response(status=202)


class RealtimeModule:
    """Adds /realtime/v1 to the gateway, and runs the change feed while the app runs."""

    name = "realtime"

    def install(self, app: web.Application) -> None:
        async def lifecycle(app: web.Application) -> AsyncIterator[None]:
            service = RealtimeService(app[GATEWAY])
            app[SERVICE] = service
            service.feed.start()
            try:
                yield
            finally:
                await service.feed.stop()

        async def close_sockets(app: web.Application) -> None:
            service = app[SERVICE]
            await asyncio.gather(*(
                c.close(WSCloseCode.GOING_AWAY, "the gateway is stopping", seconds=2)
                for c in list(service.connections)))

        app.cleanup_ctx.append(lifecycle)
        app.on_shutdown.append(close_sockets)
        app.router.add_get(ROUTE, websocket)
        app.router.add_post("/realtime/v1/api/broadcast", http_broadcast)
        app.router.add_post("/realtime/v1/api/broadcast/{topic}/events/{event}",
                            http_broadcast)
