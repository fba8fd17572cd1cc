"""What subscribers get: a broadcast as each protocol version frames it, and the `data` of
a postgres_changes push (pure: no I/O)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from tools.gateway.realtime.arrays import ArrayLiteralError, element_type, parse_array
from tools.gateway.realtime.frames import V2, FrameError, Message, encode_broadcast, encode_text
from tools.gateway.realtime.wal import Change


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


def change_data(change: Change) -> dict[str, Any]:
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
