"""The pure rules of client hydration (tools/client/stream.py): ordering by version,
duplicates, buffering of out-of-order events, gap detection and re-hydration, with time
passed in and no network."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tools.client.hydration import aggregate_topic, tenant_of, tenant_topic
from tools.client.stream import (
    Offer,
    StreamEvent,
    StreamState,
    TenantState,
    event_from_json,
    fold_hydration,
    snapshot_state,
)

TYPE, ID = "inventory.item", "6f1c0e6e-3c1e-4a55-9f7e-1234567890ab"


def event(version: int, *, quantity: int = 1, aggregate_id: str = ID) -> StreamEvent:
    return StreamEvent(
        event_id=f"e-{aggregate_id}-{version}", event_type="inventory.stock_received",
        aggregate_type=TYPE, aggregate_id=aggregate_id, version=version,
        position=100 + version, schema_version=1, payload={"quantity": quantity},
        metadata={},
    )


def evolve(state: list[int], e: StreamEvent) -> list[int]:
    """The applied versions, in order: what the rules must keep contiguous."""
    return [*state, e.version]


def hydrated(version: int = 0, grace: float = 0.5) -> StreamState[list[int]]:
    s: StreamState[list[int]] = StreamState(TYPE, ID, evolve, [], grace=grace)
    assert s.finish_hydration(list(range(1, version + 1)), version, now=0.0) == []
    return s


def test_nothing_is_applied_before_the_first_hydration() -> None:
    s: StreamState[list[int]] = StreamState(TYPE, ID, evolve, [])
    assert s.offer(event(1), now=0.0) == (Offer.BUFFERED, [])
    assert s.state == []
    assert s.version == 0
    applied = s.finish_hydration([], 0, now=0.1)
    assert [e.version for e in applied] == [1]
    assert s.state == [1]
    assert s.hydrations == 1


def test_the_next_version_is_applied_and_a_duplicate_ignored() -> None:
    s = hydrated(3)
    outcome, applied = s.offer(event(4), now=1.0)
    assert outcome == Offer.APPLIED
    assert [e.version for e in applied] == [4]
    assert s.offer(event(4), now=1.1) == (Offer.DUPLICATE, [])
    assert s.offer(event(2), now=1.2) == (Offer.DUPLICATE, [])
    assert s.state == [1, 2, 3, 4]
    assert s.version == 4


def test_an_out_of_order_event_waits_and_is_applied_when_the_hole_fills() -> None:
    s = hydrated(1)
    assert s.offer(event(3), now=1.0) == (Offer.BUFFERED, [])
    assert s.due_at() == pytest.approx(1.5)
    assert not s.overdue(1.2)
    assert s.offer(event(3), now=1.2) == (Offer.DUPLICATE, [])  # already buffered
    outcome, applied = s.offer(event(2), now=1.3)
    assert outcome == Offer.APPLIED
    assert [e.version for e in applied] == [2, 3]
    assert s.state == [1, 2, 3]
    assert s.due_at() is None
    assert not s.overdue(10.0)


def test_a_jump_that_does_not_fill_within_the_grace_is_a_gap() -> None:
    s = hydrated(1, grace=0.5)
    s.offer(event(4), now=2.0)
    assert not s.overdue(2.49)
    assert s.overdue(2.5)


def test_a_jump_is_timed_from_when_it_opened_not_from_an_earlier_one() -> None:
    s = hydrated(1, grace=0.5)
    s.offer(event(3), now=1.0)  # jump 1 -> 3 opens at 1.0
    s.offer(event(5), now=1.4)
    s.offer(event(2), now=1.45)  # fills up to 3; 5 still waits (4 is missing) from now on
    assert s.version == 3
    assert not s.overdue(1.6)
    assert s.due_at() == pytest.approx(1.95)
    assert s.overdue(1.95)


def test_a_rehydration_decides_which_buffered_events_were_duplicates() -> None:
    s = hydrated(2)
    s.offer(event(5), now=1.0)
    s.begin_hydration()
    assert s.offer(event(3), now=1.1) == (Offer.BUFFERED, [])
    assert s.offer(event(6), now=1.2) == (Offer.BUFFERED, [])
    assert not s.overdue(100.0)  # never judged while a hydration is in flight
    applied = s.finish_hydration(list(range(1, 6)), 5, now=1.3)  # the load saw up to 5
    assert [e.version for e in applied] == [6]
    assert s.state == [1, 2, 3, 4, 5, 6]
    assert s.version == 6
    assert s.pending == {}
    assert s.hydrations == 2


def test_a_rehydration_that_still_leaves_a_jump_restarts_the_gap_clock() -> None:
    s = hydrated(1)
    s.begin_hydration()
    s.offer(event(9), now=1.0)
    s.finish_hydration([1, 2, 3], 3, now=2.0)
    assert s.due_at() == pytest.approx(2.5)


def test_events_of_another_aggregate_are_foreign() -> None:
    s = hydrated(0)
    assert s.offer(event(1, aggregate_id="other"), now=0.0) == (Offer.FOREIGN, [])
    assert s.version == 0


@given(st.permutations(list(range(1, 13))), st.lists(st.integers(1, 12), max_size=12))
def test_any_arrival_order_with_duplicates_applies_each_version_once_in_order(
    order: list[int], repeats: list[int]
) -> None:
    s = hydrated(0, grace=1e9)
    for step, version in enumerate([*order[:6], *repeats, *order[6:]]):
        s.offer(event(version), now=float(step))
    assert s.state == list(range(1, 13))
    assert s.pending == {}
    assert s.due_at() is None


def test_fold_hydration_starts_from_the_snapshot_and_pages_on() -> None:
    def add(state: dict[str, Any], e: StreamEvent) -> dict[str, Any]:
        return {"on_hand": state["on_hand"] + int(e.payload["quantity"])}

    def raw(version: int) -> dict[str, Any]:
        return {"event_id": f"e{version}", "event_type": "inventory.stock_received",
                "schema_version": 1, "version": version, "payload": {"quantity": version},
                "metadata": {}, "recorded_at": "2026-11-22T20:00:00+00:00",
                "position": version}

    answer: Mapping[str, Any] = {
        "aggregate_type": TYPE, "aggregate_id": ID,
        "snapshot": {"version": 3, "schema_version": 1, "state": {"on_hand": 6}},
        "events": [raw(4), raw(5)], "version": 7, "next_version": 6,
    }
    page = {"events": [raw(6), raw(7)], "version": 7, "next_version": None}
    state, version = fold_hydration(answer, [page], add, {"on_hand": 0}, snapshot_state)
    assert (state, version) == ({"on_hand": 6 + 4 + 5 + 6 + 7}, 7)

    no_snapshot = {**answer, "snapshot": None, "events": [raw(1)], "next_version": None}
    assert fold_hydration(no_snapshot, [], add, {"on_hand": 0}, snapshot_state) == (
        {"on_hand": 1}, 1)
    with pytest.raises(ValueError, match="not contiguous"):
        fold_hydration({**answer, "events": [raw(5)]}, [], add, {"on_hand": 0},
                       snapshot_state)


def test_events_from_a_broadcast_and_from_a_row_read_alike() -> None:
    broadcast = {"event_id": "e1", "event_type": "inventory.item_registered",
                 "schema_version": 2, "aggregate_type": TYPE, "aggregate_id": ID,
                 "version": 1, "position": 41, "payload": {"sku": "A"},
                 "metadata": {"role": "service_role"},
                 "recorded_at": "2026-11-22T20:00:00+00:00", "id": "e1"}
    row = {**broadcast, "tenant_id": "t", "transaction_id": "812"}
    row.pop("id")
    assert event_from_json(broadcast) == event_from_json(row)
    hydrated_event = {k: v for k, v in broadcast.items()
                      if k not in ("aggregate_type", "aggregate_id", "id")}
    assert event_from_json(hydrated_event, TYPE, ID) == event_from_json(broadcast)


def test_the_tenant_feed_drops_duplicates_and_reports_gaps_per_aggregate() -> None:
    feed = TenantState()
    assert feed.offer(event(5)) == Offer.APPLIED  # first sight: any version is fine
    assert feed.offer(event(6)) == Offer.APPLIED
    assert feed.offer(event(6)) == Offer.DUPLICATE
    assert feed.offer(event(1, aggregate_id="other")) == Offer.APPLIED
    assert feed.offer(event(9)) is None  # 7 and 8 never came: resync
    assert feed.offer(event(10)) == Offer.APPLIED
    feed.reset()
    assert feed.offer(event(3)) == Offer.APPLIED


def test_topic_names_and_the_tenant_claim() -> None:
    claims = {"sub": "u", "role": "authenticated", "app_metadata": {"tenant_id": "t-1"}}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    token = f"e30.{body}.sig"
    assert tenant_of(token) == "t-1"
    assert tenant_topic("t-1") == "intent:tenant:t-1"
    assert aggregate_topic("t-1", TYPE, ID) == f"intent:aggregate:t-1:{TYPE}:{ID}"
    bare = base64.urlsafe_b64encode(b'{"sub": "u"}').decode().rstrip("=")
    with pytest.raises(ValueError, match="tenant_id"):
        tenant_of(f"e30.{bare}.sig")
