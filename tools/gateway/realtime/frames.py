"""Phoenix channel frames as the current Supabase clients speak them (the Realtime endpoint's
wire format; no I/O here).

- vsn 1.0.0 (supabase-py; also when no vsn is given): text frames, JSON objects. Server
  frames always carry `ref` (null for pushes): supabase-py drops a frame without it.
- vsn 2.0.0 (supabase-js): text frames are JSON arrays `[join_ref, ref, topic, event,
  payload]`; a client's `channel.send()` broadcast comes as a binary frame of kind 3, and the
  server sends broadcasts back as kind 4 (realtime-js decodes no other binary kind).

Binary layouts (lengths are one byte each, so each field is at most 255 bytes):
  kind 3, client push:  3, len(join_ref), len(ref), len(topic), len(event), len(metadata),
                        encoding, then join_ref, ref, topic, event, metadata, payload
  kind 4, server push:  4, len(topic), len(event), len(metadata), encoding,
                        then topic, event, metadata, payload
`encoding` is 1 for a JSON payload and 0 for raw bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tools.gateway.limits import InputError, loads_json, text_problem

V1 = "1.0.0"
V2 = "2.0.0"
VERSIONS = (V1, V2)

CLIENT_BROADCAST = 3
SERVER_BROADCAST = 4
JSON_ENCODING = 1
BINARY_ENCODING = 0


class FrameError(ValueError):
    """A frame the protocol does not allow; the message says what is wrong with it."""


@dataclass(frozen=True)
class Message:
    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


def version_of(vsn: str | None) -> str:
    """The protocol version a connection asked for (none: 1.0.0)."""
    if vsn is None or vsn == "":
        return V1
    if vsn not in VERSIONS:
        raise FrameError(f"unsupported protocol version {vsn!r} (supported: 1.0.0, 2.0.0)")
    return vsn


def _ref(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FrameError(f"{what} must be a string or null, not {type(value).__name__}")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise FrameError(f"{what} must be a non-empty string")
    problem = text_problem(value)  # topics reach the database and binary frames as text
    if problem is not None:
        raise FrameError(f"{what} {problem}")
    return value


def _json(data: bytes | str, what: str) -> Any:
    """JSON within the gateway's limits (depth, finite numbers), else FrameError."""
    try:
        return loads_json(data)
    except InputError as exc:
        raise FrameError(f"{what}: {exc}") from None


def decode_text(data: str, vsn: str) -> Message:
    frame = _json(data, "text frame")
    if vsn == V1:
        if not isinstance(frame, dict):
            raise FrameError("a 1.0.0 frame is a JSON object")
        return Message(
            topic=_text(frame.get("topic"), "topic"),
            event=_text(frame.get("event"), "event"),
            payload=frame.get("payload", {}),
            ref=_ref(frame.get("ref"), "ref"),
            join_ref=_ref(frame.get("join_ref"), "join_ref"),
        )
    if not isinstance(frame, list) or len(frame) != 5:
        raise FrameError("a 2.0.0 text frame is [join_ref, ref, topic, event, payload]")
    join_ref, ref, topic, event, payload = frame
    return Message(
        topic=_text(topic, "topic"),
        event=_text(event, "event"),
        payload=payload,
        ref=_ref(ref, "ref"),
        join_ref=_ref(join_ref, "join_ref"),
    )


def decode_binary(data: bytes) -> Message:
    """A kind 3 frame (a client's broadcast) as the `broadcast` message it stands for."""
    if len(data) < 7 or data[0] != CLIENT_BROADCAST:
        kind = data[0] if data else None
        raise FrameError(f"binary frame of kind {kind}: only kind 3 (broadcast) is accepted")
    lengths = data[1:6]
    encoding = data[6]
    body = data[7:]
    if sum(lengths) > len(body):
        raise FrameError("binary frame shorter than its header says")
    fields: list[bytes] = []
    at = 0
    for length in lengths:
        fields.append(body[at : at + length])
        at += length
    raw = body[at:]
    try:
        join_ref, ref, topic, event, metadata = (f.decode() for f in fields)
    except UnicodeDecodeError:
        raise FrameError("binary frame header fields must be UTF-8") from None
    if encoding == JSON_ENCODING:
        payload: Any = _json(raw, "binary frame payload") if raw else {}
    elif encoding == BINARY_ENCODING:
        payload = raw
    else:
        raise FrameError(f"binary frame encoding {encoding}: expected 0 or 1")
    broadcast: dict[str, Any] = {"type": "broadcast", "event": _text(event, "event"),
                                 "payload": payload}
    if metadata:
        broadcast["meta"] = _json(metadata, "binary frame metadata")
    return Message(
        topic=_text(topic, "topic"),
        event="broadcast",
        payload=broadcast,
        ref=ref or None,
        join_ref=join_ref or None,
    )


def encode_text(message: Message, vsn: str) -> str:
    if vsn == V1:
        return json.dumps({
            "topic": message.topic,
            "event": message.event,
            "payload": message.payload,
            "ref": message.ref,  # always present, null for pushes
        }, separators=(",", ":"))
    return json.dumps(
        [message.join_ref, message.ref, message.topic, message.event, message.payload],
        separators=(",", ":"),
    )


def encode_broadcast(topic: str, event: str, payload: Any, metadata: Any = None) -> bytes:
    """A server broadcast as a kind 4 frame (vsn 2.0.0 only)."""
    parts = [topic.encode(), event.encode(),
             json.dumps(metadata, separators=(",", ":")).encode() if metadata else b""]
    for name, part in zip(("topic", "event", "metadata"), parts, strict=True):
        if len(part) > 255:
            raise FrameError(f"{name} is {len(part)} bytes; a binary frame allows 255")
    if isinstance(payload, bytes | bytearray):
        encoding, body = BINARY_ENCODING, bytes(payload)
    else:
        encoding, body = JSON_ENCODING, json.dumps(payload, separators=(",", ":")).encode()
    header = bytes([SERVER_BROADCAST, len(parts[0]), len(parts[1]), len(parts[2]), encoding])
    return header + b"".join(parts) + body
