"""Our Realtime frames against realtime-js's own serializer (the one supabase-js 2.119 ships),
run under Node: what it encodes we decode, and what we encode it decodes."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.node import node as node_binary
from tools.gateway.realtime.frames import V2, Message, decode_binary, encode_broadcast, encode_text
from tools.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SERIALIZER = "@supabase/realtime-js/dist/main/lib/serializer.js"


def node(script: str, stdin: str = "") -> str:
    done = subprocess.run(
        [node_binary(), "-e", f"const S = require({json.dumps(SERIALIZER)}).default;"
         "const s = new S();" + script],
        cwd=REPO_ROOT, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_channel_send_from_realtime_js_decodes_as_its_broadcast() -> None:
    encoded = node(
        "s.encode({join_ref: '1', ref: '5', topic: 'realtime:room', event: 'broadcast',"
        " payload: {type: 'broadcast', event: 'curseur-é', payload: {x: 3, s: 'ü'}}},"
        " (b) => process.stdout.write(Buffer.from(b).toString('hex')));"
    )
    assert decode_binary(bytes.fromhex(encoded)) == Message(
        "realtime:room", "broadcast",
        {"type": "broadcast", "event": "curseur-é", "payload": {"x": 3, "s": "ü"}},
        ref="5", join_ref="1",
    )


def test_realtime_js_decodes_our_binary_broadcast_and_our_text_frames() -> None:
    binary = encode_broadcast("realtime:room", "ev", {"a": [1, 2]}, {"id": "m-1"}).hex()
    text = encode_text(Message("realtime:room", "phx_reply", {"status": "ok"}, ref="2",
                               join_ref="1"), V2)
    decoded = json.loads(node(
        "const input = require('fs').readFileSync(0, 'utf8').split('\\n');"
        "const bytes = Buffer.from(input[0], 'hex');"
        "const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);"
        "s.decode(buffer, (binary) => s.decode(input[1], (text) =>"
        " process.stdout.write(JSON.stringify({binary, text}))));",
        stdin=f"{binary}\n{text}",
    ))
    assert decoded["binary"] == {
        "join_ref": None, "ref": None, "topic": "realtime:room", "event": "broadcast",
        "payload": {"type": "broadcast", "event": "ev", "payload": {"a": [1, 2]},
                    "meta": {"id": "m-1"}},
    }
    assert decoded["text"] == {"join_ref": "1", "ref": "2", "topic": "realtime:room",
                               "event": "phx_reply", "payload": {"status": "ok"}}
