"""The Realtime endpoint's frames: what each client version sends and must get back."""

from __future__ import annotations

import json

import pytest

from tools.gateway.realtime.frames import (
    V1,
    V2,
    FrameError,
    Message,
    decode_binary,
    decode_text,
    encode_broadcast,
    encode_text,
    version_of,
)


def client_broadcast(join_ref: str, ref: str, topic: str, event: str, payload: bytes,
                     *, metadata: bytes = b"", encoding: int = 1) -> bytes:
    """A kind 3 frame laid out as realtime-js lays out `channel.send()`."""
    fields = [join_ref.encode(), ref.encode(), topic.encode(), event.encode(), metadata]
    return bytes([3, *(len(f) for f in fields), encoding]) + b"".join(fields) + payload


def test_no_vsn_means_1_0_0_and_an_unknown_one_is_refused() -> None:
    assert version_of(None) == V1
    assert version_of("2.0.0") == V2
    with pytest.raises(FrameError, match="unsupported protocol version"):
        version_of("3.0.0")


def test_a_1_0_0_join_decodes_with_its_refs() -> None:
    frame = json.dumps({"topic": "realtime:room", "event": "phx_join",
                        "payload": {"config": {}}, "ref": "1", "join_ref": "1"})
    assert decode_text(frame, V1) == Message("realtime:room", "phx_join", {"config": {}},
                                             ref="1", join_ref="1")


def test_a_2_0_0_text_frame_is_an_array_of_five() -> None:
    frame = json.dumps(["3", "4", "realtime:room", "phx_leave", {}])
    assert decode_text(frame, V2) == Message("realtime:room", "phx_leave", {}, ref="4",
                                             join_ref="3")
    with pytest.raises(FrameError, match=r"\[join_ref, ref, topic, event, payload\]"):
        decode_text(json.dumps({"topic": "t", "event": "e"}), V2)


@pytest.mark.parametrize("frame", ["not json", "[]", '{"event": "x"}', '{"topic": 1}'])
def test_malformed_text_frames_are_refused(frame: str) -> None:
    with pytest.raises(FrameError):
        decode_text(frame, V1)


def test_server_frames_in_1_0_0_always_carry_ref_even_when_null() -> None:
    pushed = json.loads(encode_text(Message("realtime:room", "system", {"status": "ok"}), V1))
    assert "ref" in pushed
    assert pushed["ref"] is None
    assert "join_ref" not in pushed


def test_server_frames_in_2_0_0_are_arrays_in_protocol_order() -> None:
    reply = Message("realtime:room", "phx_reply", {"status": "ok"}, ref="2", join_ref="1")
    assert json.loads(encode_text(reply, V2)) == ["1", "2", "realtime:room", "phx_reply",
                                                 {"status": "ok"}]


def test_a_client_binary_broadcast_becomes_a_broadcast_message() -> None:
    frame = client_broadcast("1", "5", "realtime:room", "cursor", b'{"x":3}',
                             metadata=b'{"k":"v"}')
    assert decode_binary(frame) == Message(
        "realtime:room", "broadcast",
        {"type": "broadcast", "event": "cursor", "payload": {"x": 3}, "meta": {"k": "v"}},
        ref="5", join_ref="1",
    )


def test_a_raw_binary_payload_stays_bytes() -> None:
    frame = client_broadcast("1", "5", "realtime:room", "blob", b"\x00\x01", encoding=0)
    assert decode_binary(frame).payload["payload"] == b"\x00\x01"


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (bytes([4, 1, 1, 0, 1]) + b"tep", "only kind 3"),
        (bytes([3, 1, 1, 40, 1, 0, 1]) + b"12", "shorter than its header"),
        (client_broadcast("1", "2", "t", "e", b"{", encoding=1), "not JSON"),
        (client_broadcast("1", "2", "t", "e", b"{}", encoding=7), "encoding 7"),
        (b"", "kind None"),
    ],
    ids=["server-kind", "truncated", "bad-json", "bad-encoding", "empty"],
)
def test_malformed_binary_frames_are_refused(frame: bytes, problem: str) -> None:
    with pytest.raises(FrameError, match=problem):
        decode_binary(frame)


def test_a_server_broadcast_is_kind_4_with_its_fields_in_order() -> None:
    frame = encode_broadcast("realtime:t", "ev", {"a": 1}, {"id": "m1"})
    meta = b'{"id":"m1"}'
    assert frame[:5] == bytes([4, len(b"realtime:t"), 2, len(meta), 1])
    assert frame[5:] == b"realtime:t" + b"ev" + meta + b'{"a":1}'


def test_a_field_over_255_bytes_cannot_go_in_a_binary_frame() -> None:
    with pytest.raises(FrameError, match="allows 255"):
        encode_broadcast("realtime:" + "x" * 300, "ev", {})
