"""What a client's messages do: heartbeat, join, leave, broadcast, presence, access_token.

A socket's frames are handled in order (a join's database checks are awaited before the next
frame, as Phoenix serialises a socket's messages); each gets its reply on the connection.
The database checks themselves are the service's (service.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import jwt
from aiohttp import WSMsgType

from tools.gateway.auth import AuthError, Caller, verify_token
from tools.gateway.realtime.connection import Connection
from tools.gateway.realtime.filters import BindingError, parse_binding
from tools.gateway.realtime.frames import FrameError, Message, decode_binary, decode_text
from tools.gateway.realtime.hub import Channel, PresenceDiff
from tools.gateway.shared import log_event
from tools.local import keys as local_keys

# A client frame's payload above this is refused with an error reply (the socket stays).
MAX_PAYLOAD_BYTES = 1024 * 1024


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


async def receive(connection: Connection, kind: WSMsgType, data: Any) -> None:
    try:
        if kind == WSMsgType.TEXT:
            message = decode_text(data, connection.vsn)
        elif kind == WSMsgType.BINARY:
            message = decode_binary(data)
        else:
            return
    except FrameError as exc:
        connection.bad_frames += 1
        if connection.bad_frames <= 3 or connection.bad_frames % 100 == 0:
            log_event("realtime_bad_frame", logging.WARNING, connection=connection.id,
                      error=str(exc)[:200], count=connection.bad_frames)
        return
    size = len(data) if isinstance(data, bytes) else len(data.encode())
    if size > MAX_PAYLOAD_BYTES:
        connection.reply(message, _error(
            f"PayloadTooLarge: the message is {size} bytes; at most {MAX_PAYLOAD_BYTES}"))
        return
    await dispatch(connection, message)


async def dispatch(connection: Connection, message: Message) -> None:
    if message.topic == "phoenix":
        if message.event == "heartbeat":
            connection.reply(message, _ok())
        else:
            connection.reply(message, _error("unmatched topic"))
        return
    if message.event == "phx_join":
        await _join(connection, message)
        return
    channel = connection.channels.get(message.topic)
    if channel is None:
        connection.reply(message, _error("unmatched topic"))
        return
    match message.event:
        case "phx_leave":
            connection.remove(channel)
            connection.reply(message, _ok())
        case "broadcast":
            await _broadcast(connection, channel, message)
        case "presence":
            await _presence(connection, channel, message)
        case "access_token":
            await _refresh(connection, channel, message)
        case _:
            connection.reply(message, _error(f"unknown event {message.event[:100]!r}"))


async def _join(connection: Connection, message: Message) -> None:
    """The channel as the join's config and token describe it, then `_subscribe`."""
    topic = message.topic
    if not topic.startswith("realtime:"):
        connection.reply(message, _error("unmatched topic"))
        return
    payload = message.payload if isinstance(message.payload, dict) else {}
    config = _object(payload.get("config"))
    token = payload.get("access_token")
    if not isinstance(token, str) or not token:
        token = connection.caller.token
    try:
        caller = verify_channel_token(token) if token else connection.caller
    except AuthError as exc:
        _refuse(connection, message, f"InvalidJWTToken: {exc.reason}")
        return
    old = connection.channels.get(topic)
    if old is not None:  # a rejoin replaces the old membership
        connection.remove(old)
    presence = _object(config.get("presence"))
    broadcast = _object(config.get("broadcast"))
    key = presence.get("key")
    channel = Channel(
        owner=connection, topic=topic, join_ref=message.join_ref or message.ref,
        private=config.get("private") is True, role=caller.role, claims=caller.claims,
        broadcast_self=broadcast.get("self") is True,
        broadcast_ack=broadcast.get("ack") is True,
        presence_key=key if isinstance(key, str) and key else str(uuid.uuid4()),
    )
    await _subscribe(connection, message, channel, config.get("postgres_changes") or [])


async def _subscribe(connection: Connection, message: Message, channel: Channel,
                     raw_bindings: Any) -> None:
    """Authorise the joining channel and check its bindings; then it is a member."""
    service = connection.service
    if channel.private and not await service.may_read(channel):
        _refuse(connection, message, "Unauthorized: You do not have permissions to read "
                                     f"from this Channel topic: {channel.name}")
        return
    try:
        if not isinstance(raw_bindings, list):
            raise BindingError("postgres_changes must be a list")
        channel.bindings = [parse_binding(b, i + 1) for i, b in enumerate(raw_bindings)]
        for binding in channel.bindings:
            await service.check_binding(binding)
    except BindingError as exc:
        _refuse(connection, message, str(exc))
        return
    if channel.bindings and not await service.feed_ready():
        _refuse(connection, message, "Unable to subscribe to changes: the change feed is not "
                                     f"running ({service.feed.failed or 'timed out'})")
        return
    topic = channel.topic
    connection.channels[topic] = channel
    service.hub.add(channel)
    connection.reply(message, _ok({"postgres_changes": [
        {**b.echo, "id": b.id} for b in channel.bindings]}))
    connection.push(Message(topic, "presence_state",
                            service.hub.presence_state(channel.name, channel.private)))
    if channel.bindings:
        connection.push(Message(topic, "system", {
            "extension": "postgres_changes", "status": "ok",
            "message": "Subscribed to PostgreSQL", "channel": channel.name}))
    connection.arm_expiry(channel)
    log_event("realtime_join", connection=connection.id, topic=topic, private=channel.private,
              role=channel.role, bindings=len(channel.bindings), status="ok")


def _refuse(connection: Connection, message: Message, reason: str) -> None:
    connection.reply(message, _error(reason))
    log_event("realtime_join", connection=connection.id, topic=message.topic, status="error",
              reason=reason)


async def _broadcast(connection: Connection, channel: Channel, message: Message) -> None:
    body = message.payload
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        connection.reply(message, _error("a broadcast is {type, event, payload}"))
        return
    if channel.private and channel.may_send is None:
        # Sending on a private channel needs the INSERT policies of realtime.messages,
        # checked once per channel (and again after a token refresh).
        channel.may_send = await connection.service.may_write(
            Caller(channel.role, channel.claims), channel.name, body["event"],
            body.get("payload"), extension="broadcast")
    if channel.private and not channel.may_send:
        connection.reply(message, _error("Unauthorized: You do not have permissions to "
                                         f"write to this Channel topic: {channel.name}"))
        return
    connection.service.fan_out(channel, body["event"], body.get("payload", {}))
    if channel.broadcast_ack:
        connection.reply(message, _ok())


async def _presence(connection: Connection, channel: Channel, message: Message) -> None:
    body = message.payload if isinstance(message.payload, dict) else {}
    service = connection.service
    match body.get("event"):
        case "track":
            if channel.private and channel.may_track is None:
                # Publishing presence on a private channel needs the INSERT policies of
                # realtime.messages for extension 'presence' (once per channel and token).
                channel.may_track = await service.may_write(
                    Caller(channel.role, channel.claims), channel.name, "presence",
                    body.get("payload"), extension="presence")
            if channel.private and not channel.may_track:
                connection.reply(message, _error(
                    "Unauthorized: You do not have permissions to track presence on "
                    f"this Channel topic: {channel.name}"))
                return
            diff: PresenceDiff | None = service.hub.track(channel, body.get("payload", {}))
        case "untrack":
            diff = service.hub.untrack(channel)
        case other:
            connection.reply(message, _error(f"presence event must be track or untrack, "
                                             f"not {str(other)[:50]!r}"))
            return
    connection.reply(message, _ok())
    if diff is not None:
        service.send_diff(channel.name, channel.private, diff)


async def _refresh(connection: Connection, channel: Channel, message: Message) -> None:
    """A new token for the channel: its claims are what RLS sees from now on; a
    private channel is authorised again with them."""
    body = message.payload if isinstance(message.payload, dict) else {}
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        return
    try:
        caller = verify_channel_token(token)
    except AuthError as exc:
        connection.expire(channel, exc.reason)
        return
    channel.role, channel.claims = caller.role, caller.claims
    channel.may_send = channel.may_track = None
    if channel.private and not await connection.service.may_read(channel):
        connection.expire(channel, "Unauthorized: You do not have permissions to read from "
                                   f"this Channel topic: {channel.name}")
        return
    connection.arm_expiry(channel)
