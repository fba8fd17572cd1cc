from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from domain.aggregate import Aggregate
from domain.contracts import Command, Event, Snapshot, StreamId
from domain.decider import (
    Loaded,
    decide,
    event_id_for,
    evolve_all,
    rehydrate,
    snapshot_due,
    take_snapshot,
)
from domain.errors import BadInput, DomainRejection, InvalidCommand, InvalidEvent, InvalidSnapshot
from domain.inventory import Item, ItemState
from domain.registry import Registry
from projections.shop import registry as app_registry
from tests.support.builders import (
    NOW,
    OTHER_TENANT,
    TENANT,
    TRACEPARENT,
    StockItem,
    command,
    item_stream,
    metadata,
)

# -- a counter whose state schema moved from `count` (v1) to `total` (v2) ----------------------


class CounterState(BaseModel):
    total: int = 0


class AddMany(BaseModel):
    counter_id: UUID
    amounts: list[int]


class Added(BaseModel):
    amount: int


class CounterWithoutUpcast(Aggregate[CounterState]):
    """The counter at state schema v2, with no way (yet) to read v1 snapshots."""

    type_name = "test.counter"
    state_model = CounterState
    state_schema_version = 2
    snapshot_every = 3

    @classmethod
    def decide(cls, command: BaseModel, state: CounterState) -> Sequence[BaseModel]:
        match command:
            case AddMany(amounts=amounts):
                return [Added(amount=amount) for amount in amounts]
            case _:
                cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: CounterState, event: BaseModel) -> CounterState:
        match event:
            case Added(amount=amount):
                return CounterState(total=state.total + amount)
            case _:
                cls.unhandled_event(event)


class Counter(CounterWithoutUpcast):
    @classmethod
    def upcast_state(cls, state: dict[str, Any], from_version: int) -> dict[str, Any]:
        if from_version == 1:
            return {"total": state["count"]}
        return super().upcast_state(state, from_version)


registry = Registry()
registry.aggregate(Counter)
registry.event("test.added")(Added)
registry.command(
    "test.add_many", aggregate=Counter, aggregate_id="counter_id", roles={"authenticated"}
)(AddMany)
registry.validate()


def counter_stream(counter_id: UUID | None = None) -> StreamId:
    return StreamId(
        tenant_id=TENANT, aggregate_type="test.counter", aggregate_id=counter_id or uuid4()
    )


def add_many(stream: StreamId, *amounts: int, command_id: UUID | None = None) -> Command:
    return command(
        "test.add_many",
        {"counter_id": str(stream.aggregate_id), "amounts": list(amounts)},
        command_id=command_id,
        meta=metadata(tenant_id=stream.tenant_id),
    )


def counter_events(stream: StreamId, *amounts: int) -> list[Event]:
    empty = Loaded(stream=stream, state=CounterState(), version=0)
    return decide(registry, add_many(stream, *amounts), empty)


# -- decide ------------------------------------------------------------------------------------


def test_new_events_are_stamped_with_the_current_schema_version() -> None:
    item = StockItem().registered()
    [received] = item.send("receive_stock", quantity=3)
    assert received.event_type == "inventory.stock_received"
    assert received.schema_version == 2  # v1 events exist in the store, new ones are v2
    assert received.payload == {"item_id": str(item.item_id), "quantity": 3}


def test_versions_continue_from_the_loaded_version() -> None:
    stream = counter_stream()
    loaded = Loaded(stream=stream, state=CounterState(total=10), version=7)
    events = decide(registry, add_many(stream, 1, 2, 3), loaded)
    assert [event.version for event in events] == [8, 9, 10]
    assert all(event.stream == stream for event in events)


def test_events_carry_the_commands_metadata_with_the_command_as_cause() -> None:
    stream = counter_stream()
    meta = metadata(user_id=uuid4(), role="service_role", traceparent=TRACEPARENT)
    envelope = command(
        "test.add_many", {"counter_id": str(stream.aggregate_id), "amounts": [1, 2]}, meta=meta
    )
    events = decide(registry, envelope, Loaded(stream, CounterState(), 0), now=NOW)
    for event in events:
        assert event.metadata.causation_id == envelope.command_id
        assert event.metadata.correlation_id == meta.correlation_id
        assert event.metadata.occurred_at == NOW
        assert (event.metadata.tenant_id, event.metadata.user_id) == (TENANT, meta.user_id)
        assert (event.metadata.role, event.metadata.traceparent) == ("service_role", TRACEPARENT)


def test_a_retried_command_yields_the_same_event_ids() -> None:
    stream = counter_stream()
    loaded = Loaded(stream=stream, state=CounterState(), version=0)
    command_id = uuid4()
    first = decide(registry, add_many(stream, 1, 2, command_id=command_id), loaded)
    retry = decide(registry, add_many(stream, 1, 2, command_id=command_id), loaded)
    other = decide(registry, add_many(stream, 1, 2), loaded)
    ids = [event.event_id for event in first]
    assert ids == [event.event_id for event in retry]
    assert ids == [event_id_for(command_id, 0), event_id_for(command_id, 1)]
    assert len(set(ids)) == 2
    assert not set(ids) & {event.event_id for event in other}


def test_event_ids_can_be_supplied_by_the_caller() -> None:
    stream = counter_stream()
    expected = [uuid4(), uuid4()]
    supplied = iter(expected)
    events = decide(
        registry,
        add_many(stream, 1, 2),
        Loaded(stream, CounterState(), 0),
        event_ids=lambda: next(supplied),
    )
    assert [event.event_id for event in events] == expected


def test_deciding_nothing_yields_no_events() -> None:
    stream = counter_stream()
    assert decide(registry, add_many(stream), Loaded(stream, CounterState(), 0)) == []


def test_a_rejection_is_raised_with_its_code() -> None:
    item = StockItem().registered(on_hand=1)
    with pytest.raises(DomainRejection) as caught:
        item.send("reserve_stock", order_id=uuid4(), quantity=2)
    assert caught.value.code == "insufficient_stock"
    assert caught.value.details == {"requested": 2, "available": 1}


def test_a_command_for_another_stream_than_the_loaded_one_is_refused() -> None:
    loaded = Loaded(counter_stream(), CounterState(), 0)
    with pytest.raises(InvalidCommand, match="was loaded"):
        decide(registry, add_many(counter_stream(), 1), loaded)


def test_decide_accepts_an_already_parsed_command() -> None:
    stream = counter_stream()
    parsed = registry.parse_command(add_many(stream, 4))
    [event] = decide(registry, parsed, Loaded(stream, CounterState(), 0))
    assert event.payload == {"amount": 4}


def test_evolve_all_applies_new_events_like_rehydrate_does() -> None:
    stream = counter_stream()
    start = Loaded(stream, CounterState(), 0)
    events = decide(registry, add_many(stream, 1, 2), start)
    after = evolve_all(registry, Counter, start, events)
    assert after == rehydrate(registry, Counter, stream, None, events)
    assert (after.state.total, after.version) == (3, 2)


def test_evolve_all_refuses_events_that_do_not_continue_the_loaded_version() -> None:
    stream = counter_stream()
    events = counter_events(stream, 1, 2)
    loaded = rehydrate(registry, Counter, stream, None, events)
    with pytest.raises(InvalidEvent, match="duplicate"):
        evolve_all(registry, Counter, loaded, events[1:])


# -- rehydrate ---------------------------------------------------------------------------------


def test_rehydrate_folds_the_stream_in_order() -> None:
    stream = counter_stream()
    loaded = rehydrate(registry, Counter, stream, None, counter_events(stream, 1, 2, 3))
    assert loaded == Loaded(stream=stream, state=CounterState(total=6), version=3)


def test_rehydrating_an_empty_stream_gives_the_initial_state_at_version_zero() -> None:
    stream = counter_stream()
    assert rehydrate(registry, Counter, stream, None, []) == Loaded(stream, CounterState(), 0)


def test_rehydrate_detects_a_gap() -> None:
    stream = counter_stream()
    first, _, third = counter_events(stream, 1, 2, 3)
    with pytest.raises(InvalidEvent, match="gap in the event sequence: expected version 2, got 3"):
        rehydrate(registry, Counter, stream, None, [first, third])


def test_rehydrate_detects_a_stream_that_does_not_start_at_one() -> None:
    stream = counter_stream()
    _, second = counter_events(stream, 1, 2)
    with pytest.raises(InvalidEvent, match="expected version 1, got 2"):
        rehydrate(registry, Counter, stream, None, [second])


def test_rehydrate_detects_a_duplicate() -> None:
    stream = counter_stream()
    first, second = counter_events(stream, 1, 2)
    with pytest.raises(InvalidEvent, match="duplicate") as caught:
        rehydrate(registry, Counter, stream, None, [first, second, second])
    assert caught.value.details["problem"] == "duplicate"


@pytest.mark.parametrize("tenant", [TENANT, OTHER_TENANT])
def test_rehydrate_refuses_events_of_another_stream(tenant: UUID) -> None:
    stream = counter_stream()
    foreign = StreamId(tenant_id=tenant, aggregate_type="test.counter", aggregate_id=uuid4())
    [event] = counter_events(foreign, 1)
    with pytest.raises(InvalidEvent, match="belongs to"):
        rehydrate(registry, Counter, stream, None, [event])


def test_rehydrate_refuses_a_stream_of_another_aggregate_type() -> None:
    with pytest.raises(BadInput, match=re.escape("not a stream of test.counter")):
        rehydrate(registry, Counter, item_stream(uuid4()), None, [])


def test_rehydrate_reads_events_stored_in_an_old_schema_version() -> None:
    item = StockItem().registered()
    [received] = item.send("receive_stock", quantity=5)
    as_v1 = received.model_copy(
        update={"schema_version": 1, "payload": {"item_id": str(item.item_id), "qty": 5}}
    )
    loaded = rehydrate(app_registry, Item, item.stream, None, [item.events[0], as_v1])
    assert loaded.state == item.state


def test_rehydrate_skips_events_the_snapshot_covers() -> None:
    stream = counter_stream()
    events = counter_events(stream, 1, 2, 3, 4)
    snapshot = take_snapshot(Counter, rehydrate(registry, Counter, stream, None, events[:2]))
    expected = rehydrate(registry, Counter, stream, None, events)
    assert rehydrate(registry, Counter, stream, snapshot, events) == expected
    assert rehydrate(registry, Counter, stream, snapshot, events[2:]) == expected
    assert rehydrate(registry, Counter, stream, snapshot, events[1:]) == expected


def test_rehydrate_detects_a_gap_right_after_the_snapshot() -> None:
    stream = counter_stream()
    events = counter_events(stream, 1, 2, 3, 4)
    snapshot = take_snapshot(Counter, rehydrate(registry, Counter, stream, None, events[:2]))
    with pytest.raises(InvalidEvent, match="expected version 3, got 4"):
        rehydrate(registry, Counter, stream, snapshot, events[3:])


# -- snapshots ---------------------------------------------------------------------------------


def counter_snapshot(stream: StreamId, schema_version: int, state: dict[str, Any]) -> Snapshot:
    return Snapshot(stream=stream, version=2, schema_version=schema_version, state=state)


def test_take_snapshot_records_state_version_and_schema_version() -> None:
    stream = counter_stream()
    loaded = Loaded(stream, CounterState(total=5), 2)
    assert take_snapshot(Counter, loaded) == counter_snapshot(stream, 2, {"total": 5})


def test_an_empty_stream_cannot_be_snapshot() -> None:
    with pytest.raises(InvalidSnapshot, match="nothing to snapshot"):
        take_snapshot(Counter, Loaded(counter_stream(), CounterState(), 0))


def test_a_snapshot_of_an_older_schema_version_goes_through_upcast_state() -> None:
    stream = counter_stream()
    events = counter_events(stream, 1, 2, 3)
    old = counter_snapshot(stream, 1, {"count": 3})
    loaded = rehydrate(registry, Counter, stream, old, events)
    assert loaded == rehydrate(registry, Counter, stream, None, events)


def test_a_snapshot_of_a_newer_schema_version_is_refused() -> None:
    stream = counter_stream()
    with pytest.raises(InvalidSnapshot, match="newer than 2"):
        rehydrate(registry, Counter, stream, counter_snapshot(stream, 3, {"total": 3}), [])


def test_by_default_an_older_snapshot_is_refused() -> None:
    stream = counter_stream()
    with pytest.raises(InvalidSnapshot, match="cannot read state of schema version 1"):
        rehydrate(
            registry, CounterWithoutUpcast, stream, counter_snapshot(stream, 1, {"count": 3}), []
        )


def test_a_failing_state_upcast_makes_the_snapshot_invalid() -> None:
    stream = counter_stream()
    with pytest.raises(InvalidSnapshot, match="upcasting state from v1 failed"):
        rehydrate(registry, Counter, stream, counter_snapshot(stream, 1, {"total": 3}), [])


def test_a_snapshot_that_does_not_fit_the_state_model_is_refused() -> None:
    stream = counter_stream()
    with pytest.raises(InvalidSnapshot, match="does not fit CounterState"):
        rehydrate(registry, Counter, stream, counter_snapshot(stream, 2, {"total": "many"}), [])


def test_a_snapshot_of_another_stream_is_refused() -> None:
    snapshot = counter_snapshot(counter_stream(), 2, {"total": 3})
    with pytest.raises(InvalidSnapshot, match="offered for"):
        rehydrate(registry, Counter, counter_stream(), snapshot, [])


@pytest.mark.parametrize(
    ("before", "after", "due"),
    [(0, 2, False), (2, 3, True), (0, 3, True), (3, 4, False), (3, 5, False), (1, 7, True)],
)
def test_a_snapshot_is_due_when_a_multiple_is_crossed(before: int, after: int, due: bool) -> None:
    assert snapshot_due(Counter, before, after) is due


def test_without_a_policy_no_snapshot_is_ever_due() -> None:
    class Never(Aggregate[CounterState]):
        type_name = "test.never"
        state_model = CounterState

    assert not snapshot_due(Never, 0, 1_000)


def test_item_snapshots_every_fifty_events() -> None:
    assert Item.snapshot_every == 50
    assert snapshot_due(Item, 49, 50)
    assert not snapshot_due(Item, 50, 99)
    loaded: Loaded[ItemState] = StockItem().registered().loaded
    assert take_snapshot(Item, loaded).schema_version == Item.state_schema_version


def test_errors_name_the_stream() -> None:
    stream = counter_stream()
    first, _, third = counter_events(stream, 1, 2, 3)
    with pytest.raises(InvalidEvent, match=re.escape(str(stream))):
        rehydrate(registry, Counter, stream, None, [first, third])
