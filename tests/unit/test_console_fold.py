"""The console's fold (tools.gateway.console_fold) with the shop's registry: the state after
each event is what the store's own fold gives at that version (old schema versions upcast),
each step's diff names what the event changed, a later page continues from the state it is
given, and bad input is a 4xx refusal with a stable code; over HTTP too, where a gateway
without an application says so with 503."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from domain.contracts import Event, StreamId
from domain.decider import rehydrate
from projections.application import Application
from projections.shop import application, registry
from tools.gateway.console_fold import (
    MAX_BODY_BYTES,
    MAX_EVENTS,
    FoldRefusal,
    FoldRoute,
    fold,
    json_diff,
)

TENANT = UUID("00000000-0000-4000-8000-0000000000f0")


def stored(item: UUID, version: int, event_type: str, payload: dict[str, Any],
           schema_version: int = 1, tenant: UUID = TENANT) -> dict[str, Any]:
    """An event as read_stream returns it."""
    return {"event_id": str(uuid4()), "event_type": event_type,
            "schema_version": schema_version, "version": version, "payload": payload,
            "metadata": {"tenant_id": str(tenant), "correlation_id": str(uuid4())},
            "recorded_at": "2026-12-08T03:00:00.000001+00:00", "position": version * 10}


def history(item: UUID) -> list[dict[str, Any]]:
    order = str(uuid4())
    return [
        stored(item, 1, "inventory.item_registered",
               {"item_id": str(item), "sku": "F-1", "name": "Folded"}),
        stored(item, 2, "inventory.stock_received", {"item_id": str(item), "qty": 5}, 1),
        stored(item, 3, "inventory.stock_received", {"item_id": str(item), "quantity": 2}, 2),
        stored(item, 4, "inventory.stock_reserved",
               {"item_id": str(item), "order_id": order, "quantity": 3}),
        stored(item, 5, "inventory.stock_released",
               {"item_id": str(item), "order_id": order, "quantity": 3}),
    ]


def python_fold(item: UUID, events: list[dict[str, Any]], version: int) -> dict[str, Any]:
    """The store's fold of the first `version` events, as the state model dumps it."""
    stream = StreamId(tenant_id=TENANT, aggregate_type="inventory.item", aggregate_id=item)
    envelopes = [Event.model_validate({**e, "stream": stream}) for e in events[:version]]
    aggregate = registry.aggregate_type("inventory.item")
    state: dict[str, Any] = rehydrate(registry, aggregate, stream, None,
                                      envelopes).state.model_dump(mode="json")
    return state


def request(events: list[Any], **fields: Any) -> dict[str, Any]:
    return {"aggregate_type": "inventory.item", "state_before": None, "events": events,
            **fields}


def test_each_step_is_the_stores_fold_at_its_version() -> None:
    item = uuid4()
    events = history(item)
    answer = fold(registry, request(events, aggregate_id=str(item)))
    assert answer["start"] == {"version": 0, "state": python_fold(item, events, 0)}
    assert [s["version"] for s in answer["steps"]] == [1, 2, 3, 4, 5]
    for step in answer["steps"]:
        assert step["state"] == python_fold(item, events, step["version"])
    assert answer["steps"][1]["state"]["on_hand"] == 5  # v1 `qty` upcast to `quantity`


def test_each_diff_names_what_the_event_changed() -> None:
    item = uuid4()
    events = history(item)
    steps = fold(registry, request(events))["steps"]
    order = events[3]["payload"]["order_id"]
    assert {row["path"] for row in steps[0]["diff"]} == {"/registered", "/sku", "/name"}
    assert steps[1]["diff"] == [{"path": "/on_hand", "kind": "changed", "before": 0,
                                 "after": 5}]
    assert steps[3]["diff"] == [{"path": f"/reservations/{order}", "kind": "added",
                                 "before": None, "after": 3}]
    assert steps[4]["diff"] == [{"path": f"/reservations/{order}", "kind": "removed",
                                 "before": 3, "after": None}]


def test_a_later_page_continues_from_the_state_before_it() -> None:
    item = uuid4()
    events = history(item)
    first = fold(registry, request(events[:2]))["steps"][-1]
    rest = fold(registry, request(events[2:], state_before={
        "version": first["version"], "state": first["state"]}))
    assert rest["start"]["version"] == 2
    assert [s["state"] for s in rest["steps"]] == [
        python_fold(item, events, v) for v in (3, 4, 5)]


def test_json_diff_compares_objects_by_key_and_arrays_by_index() -> None:
    assert json_diff({"a": {"b/c": 1}, "l": [1, 2]}, {"a": {"b/c": 2}, "l": [1]}) == [
        {"path": "/a/b~1c", "kind": "changed", "before": 1, "after": 2},
        {"path": "/l/1", "kind": "removed", "before": 2, "after": None},
    ]
    assert json_diff({"x": 1}, {"x": True}) == [
        {"path": "/x", "kind": "changed", "before": 1, "after": True}]
    assert json_diff(5, 5) == []


def refusal(document: Any) -> FoldRefusal:
    with pytest.raises(FoldRefusal) as refused:
        fold(registry, document)
    assert 400 <= refused.value.status < 500
    return refused.value


@pytest.mark.parametrize(("document", "code"), [
    ([], "malformed"),
    ({"aggregate_type": "inventory.item"}, "malformed"),
    ({"aggregate_type": "inventory.item", "events": [], "state_before": {"version": 0}},
     "malformed"),
    ({"aggregate_type": "inventory.item", "events": [], "aggregate_id": "nope"}, "malformed"),
    ({"aggregate_type": "shop.nothing", "events": []}, "unknown_aggregate_type"),
    ({"aggregate_type": "inventory.item", "events": [{}] * (MAX_EVENTS + 1)},
     "too_many_events"),
    ({"aggregate_type": "inventory.item", "events": [], "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]
    ]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "too_deep"),
    ({"aggregate_type": "inventory.item", "events": ["not an event"]}, "malformed"),
])
def test_a_malformed_request_is_refused(document: Any, code: str) -> None:
    assert refusal(document).code == code


def test_events_out_of_order_or_with_a_gap_are_refused() -> None:
    events = history(uuid4())
    assert refusal(request([events[0], events[2]])).code == "invalid_event"  # a gap
    assert refusal(request([events[1]])).code == "invalid_event"  # does not start at 1
    assert refusal(request([events[0], events[0]])).code == "invalid_event"  # a repeat
    assert "expected version 2" in refusal(request([events[0], events[2]])).message


def test_events_the_domain_cannot_read_are_refused() -> None:
    item = uuid4()
    first = history(item)[0]
    unknown = stored(item, 1, "inventory.nothing", {"item_id": str(item)})
    misfit = stored(item, 1, "inventory.item_registered", {"item_id": str(item)})
    newer = {**first, "schema_version": 9}
    other = stored(item, 2, "inventory.stock_received",
                   {"item_id": str(item), "quantity": 1}, 2, tenant=uuid4())
    assert refusal(request([unknown])).code == "unknown_event_type"
    assert refusal(request([misfit])).code == "invalid_event"
    assert refusal(request([newer])).code == "invalid_event"
    assert refusal(request([first, other])).code == "invalid_event"  # another tenant's
    assert refusal(request([{**first, "event_id": "x"}])).code == "invalid_event"


def test_a_state_before_that_does_not_fit_the_model_is_refused() -> None:
    item = uuid4()
    second = history(item)[1]
    bad = request([second], state_before={"version": 1, "state": {"on_hand": "lots"}})
    assert refusal(bad).code == "invalid_state_before"
    newer = request([second], state_before={"version": 1, "state": {}, "schema_version": 7})
    assert refusal(newer).code == "invalid_state_before"


async def post(app: Application | None, body: bytes) -> tuple[int, Any]:
    """POST `body` to the fold route alone, served on a local port."""
    served = web.Application(client_max_size=2 * MAX_BODY_BYTES)
    served.router.add_post("/console/fold", FoldRoute(app).handle)
    async with TestClient(TestServer(served)) as client:
        answer = await client.post("/console/fold", data=body,
                                   headers={"Content-Type": "application/json"})
        return answer.status, await answer.json()


async def test_the_route_folds_and_refuses_in_json() -> None:
    item = uuid4()
    good = json.dumps(request(history(item)[:2])).encode()
    status, answer = await post(application, good)
    assert status == 200
    assert [s["version"] for s in answer["steps"]] == [1, 2]
    status, answer = await post(application, b"{not json")
    assert (status, answer["code"]) == (400, "invalid_json")
    status, answer = await post(application, b" " * (MAX_BODY_BYTES + 1))
    assert (status, answer["code"]) == (413, "too_large")
    status, answer = await post(application, json.dumps(request([history(item)[1]])).encode())
    assert (status, answer["code"]) == (422, "invalid_event")
    status, answer = await post(None, good)
    assert (status, answer["code"]) == (503, "no_application")
