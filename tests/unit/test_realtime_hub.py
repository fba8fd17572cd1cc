"""The Realtime hub (broadcast targets, presence diffs and state), broadcast frames per
protocol version, and wal2json parsing."""

from __future__ import annotations

from typing import Any

from tools.gateway.realtime.frames import V1, V2, Message, decode_text, encode_broadcast
from tools.gateway.realtime.hub import Channel, Hub
from tools.gateway.realtime.payloads import broadcast_frame
from tools.gateway.realtime.wal import commit_time, parse_transaction


def channel(topic: str, *, private: bool = False, self_: bool = False, key: str = "k",
            owner: object = None) -> Channel:
    return Channel(owner=owner, topic=f"realtime:{topic}", join_ref="1", private=private,
                   role="authenticated", claims={}, broadcast_self=self_, presence_key=key)


def test_broadcasts_reach_the_group_and_the_sender_only_with_self() -> None:
    hub = Hub()
    quiet, loud, other = channel("room"), channel("room", self_=True), channel("room", key="o")
    secret, elsewhere = channel("room", private=True), channel("hall")
    for c in (quiet, loud, other, secret, elsewhere):
        hub.add(c)
    assert hub.broadcast_targets(quiet) == [loud, other]
    assert hub.broadcast_targets(loud) == [quiet, loud, other]
    assert hub.broadcast_targets(secret) == []  # public and private of one name are apart
    assert hub.members("room", True) == [secret]


def test_presence_track_retrack_untrack_and_leave() -> None:
    hub = Hub()
    alice, bob = channel("room", key="alice"), channel("room", key="bob")
    hub.add(alice)
    hub.add(bob)
    first = hub.track(alice, {"status": "online"})
    meta = first.joins["alice"]["metas"][0]
    assert meta["status"] == "online"
    assert meta["phx_ref"]
    assert first.leaves == {}
    again = hub.track(alice, {"status": "away"})
    assert again.leaves == {"alice": {"metas": [meta]}}
    new_meta = again.joins["alice"]["metas"][0]
    assert new_meta["phx_ref"] != meta["phx_ref"]
    assert new_meta["phx_ref_prev"] == meta["phx_ref"]
    hub.track(bob, {"status": "online"})
    state = hub.presence_state("room", False)
    assert set(state) == {"alice", "bob"}
    assert state["alice"]["metas"] == [new_meta]
    gone = hub.remove(bob)
    assert gone is not None
    assert list(gone.leaves) == ["bob"]
    assert set(hub.presence_state("room", False)) == {"alice"}
    untracked = hub.untrack(alice)
    assert untracked is not None
    assert untracked.leaves == {"alice": {"metas": [new_meta]}}
    assert hub.untrack(alice) is None
    assert hub.presence_state("room", False) == {}


def test_wal2json_transactions_become_changes_with_the_commit_time() -> None:
    rows: list[dict[str, Any]] = [
        {"action": "B", "timestamp": "2026-11-22 20:12:25.123456+00"},
        {"action": "I", "schema": "public", "table": "t",
         "columns": [{"name": "id", "type": "integer", "value": 1},
                     {"name": "doc", "type": "jsonb", "value": "{\"a\": 1}"}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "U", "schema": "public", "table": "t",
         "columns": [{"name": "id", "type": "integer", "value": 1},
                     {"name": "doc", "type": "jsonb", "value": "{}"}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "D", "schema": "public", "table": "t",
         "identity": [{"name": "id", "type": "integer", "value": 1}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "T", "schema": "public", "table": "t"},
        {"action": "C", "timestamp": "2026-11-22 20:12:25.999+00"},
    ]
    inserted, updated, deleted = parse_transaction(rows)
    assert (inserted.type, inserted.record, inserted.old_record) == (
        "INSERT", {"id": 1, "doc": "{\"a\": 1}"}, None)
    assert (updated.type, updated.old_record) == ("UPDATE", {"id": 1})
    assert (deleted.type, deleted.record, deleted.old_record) == ("DELETE", None, {"id": 1})
    assert deleted.key_types == {"id": "integer"}
    assert {c.commit_timestamp for c in (inserted, updated, deleted)} == {
        "2026-11-22T20:12:25.999Z"}
    assert commit_time("2026-11-22 21:00:00.5+01") == "2026-11-22T20:00:00.500Z"


def test_broadcast_frames_per_protocol_version() -> None:
    text = broadcast_frame("realtime:r", "ev", {"a": 1}, {"id": "m"}, V1)
    assert isinstance(text, str)
    assert decode_text(text, V1) == Message(
        "realtime:r", "broadcast",
        {"type": "broadcast", "event": "ev", "payload": {"a": 1}, "meta": {"id": "m"}})
    binary = broadcast_frame("realtime:r", "ev", {"a": 1}, {"id": "m"}, V2)
    assert binary == encode_broadcast("realtime:r", "ev", {"a": 1}, {"id": "m"})
    # Too long for kind 4's one-byte lengths: the 2.0.0 text form instead.
    long_event = "e" * 300
    fallback = broadcast_frame("realtime:r", long_event, {}, None, V2)
    assert isinstance(fallback, str)
    assert decode_text(fallback, V2).payload["event"] == long_event
    # Raw bytes have no JSON form for 1.0.0.
    assert broadcast_frame("realtime:r", "ev", b"\x00\x01", None, V1) is None
    assert isinstance(broadcast_frame("realtime:r", "ev", b"\x00\x01", None, V2), bytes)
