"""The lean save and load paths give the same states as the careful ones, and check what
they skip elsewhere: decided events are evolved with the models the aggregate returned, and
a page of stored events is decoded in one pass, older schema versions upcast one by one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, model_validator

from domain.aggregate import Aggregate
from domain.contracts import Command, Event, StreamId
from domain.decider import Loaded, decide, evolve_all, rehydrate
from domain.errors import InvalidEvent, UnknownEventType
from domain.registry import Registry
from domain.replay import decode_page, fold_page
from tests.support.builders import TENANT, metadata


class Tally(BaseModel):
    total: int = 0
    notes: int = 0


class Add(BaseModel):
    tally_id: UUID
    amount: int


class Added(BaseModel):
    """v2: `amount` (v1 said `n`). Counts its validations, so a test can see them."""

    validations: ClassVar[int] = 0
    amount: int

    @model_validator(mode="after")
    def _count(self) -> Added:
        Added.validations += 1
        return self


class Noted(BaseModel):
    text: str


class Tallies(Aggregate[Tally]):
    type_name = "lean.tally"
    state_model = Tally

    @classmethod
    def decide(cls, command: BaseModel, state: Tally) -> Sequence[BaseModel]:
        match command:
            case Add(amount=amount):
                return [Added(amount=amount), Noted(text=f"+{amount}")]
            case _:
                cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: Tally, event: BaseModel) -> Tally:
        match event:
            case Added(amount=amount):
                return Tally(total=state.total + amount, notes=state.notes)
            case Noted():
                return Tally(total=state.total, notes=state.notes + 1)
            case _:
                cls.unhandled_event(event)


registry = Registry()
registry.aggregate(Tallies)
registry.event("lean.added", version=2)(Added)
registry.event("lean.noted")(Noted)
registry.upcaster("lean.added", from_version=1)(lambda p: {"amount": p["n"]})
registry.command("lean.add", aggregate=Tallies, aggregate_id="tally_id",
                 roles={"authenticated"})(Add)
registry.validate()


def tally_stream() -> StreamId:
    return StreamId(tenant_id=TENANT, aggregate_type="lean.tally", aggregate_id=uuid4())


def add(stream: StreamId, amount: int) -> Command:
    return Command(
        command_id=uuid4(), command_type="lean.add",
        payload={"tally_id": str(stream.aggregate_id), "amount": amount},
        metadata=metadata(tenant_id=stream.tenant_id),
    )


def start(stream: StreamId) -> Loaded[Tally]:
    return Loaded(stream=stream, state=Tally(), version=0)


def page(*rows: tuple[int, str, dict[str, Any]]) -> str:
    return json.dumps([{"v": v, "k": k, "p": p} for v, k, p in rows])


# -- save: decided events are not validated again ------------------------------------------


def test_decided_events_are_evolved_with_the_models_the_aggregate_returned() -> None:
    stream = tally_stream()
    Added.validations = 0
    events = decide(registry, add(stream, 5), start(stream))
    made = Added.validations  # the aggregate built one Added
    after = evolve_all(registry, Tallies, start(stream), events)
    assert after.state == Tally(total=5, notes=1)
    assert Added.validations == made == 1


def test_an_event_with_another_payload_than_decided_is_validated_as_stored() -> None:
    stream = tally_stream()
    [added, noted] = decide(registry, add(stream, 5), start(stream))
    changed = added.model_copy(update={"payload": {"amount": 7}})
    assert changed.decided_payload() is None
    Added.validations = 0
    after = evolve_all(registry, Tallies, start(stream), [changed, noted])
    assert after.state.total == 7
    assert Added.validations == 1


def test_a_decided_event_equals_itself_read_back() -> None:
    stream = tally_stream()
    [added, _] = decide(registry, add(stream, 5), start(stream))
    read_back = Event.model_validate_json(added.model_dump_json())
    assert read_back.decided_payload() is None
    assert added == read_back


# -- load: one page, decoded in one pass -----------------------------------------------------


def test_a_page_folds_to_the_state_the_envelope_fold_gives() -> None:
    stream = tally_stream()
    events = decide(registry, add(stream, 3), start(stream))
    events += decide(registry, add(stream, 4), Loaded(stream, Tally(), 2))
    stored = [Event.model_validate_json(e.model_dump_json()) for e in events]
    text = page(*((e.version, f"{e.event_type}@{e.schema_version}", e.payload) for e in stored))
    assert fold_page(registry, Tallies, start(stream), text) == rehydrate(
        registry, Tallies, stream, None, stored
    )


def test_current_payloads_decode_to_models_and_older_ones_are_upcast() -> None:
    stream = tally_stream()
    rows = decode_page(registry, stream, page(
        (1, "lean.added@1", {"n": 2}),
        (2, "lean.added@2", {"amount": 3}),
        (3, "lean.noted@1", {"text": "x"}),
    ))
    assert [r["p"] for r in rows] == [Added(amount=2), Added(amount=3), Noted(text="x")]


def test_a_payload_that_fails_its_model_is_named_by_its_version() -> None:
    stream = tally_stream()
    bad = page((1, "lean.added@2", {"amount": 1}), (2, "lean.added@2", {"amount": "lots"}))
    with pytest.raises(InvalidEvent, match=r"lean\.added event version 2 of .*amount"):
        decode_page(registry, stream, bad)


def test_an_old_payload_that_cannot_be_upcast_is_named_by_its_version() -> None:
    stream = tally_stream()
    with pytest.raises(InvalidEvent, match=r"event version 1 of .*upcasting from v1"):
        decode_page(registry, stream, page((1, "lean.added@1", {"amount": 1})))


def test_an_unknown_event_type_in_a_page_is_refused() -> None:
    stream = tally_stream()
    with pytest.raises(UnknownEventType):
        decode_page(registry, stream, page((1, "lean.vanished@1", {})))


@pytest.mark.parametrize("versions", [(1, 3), (1, 1)], ids=["gap", "repeat"])
def test_a_page_whose_versions_do_not_follow_on_is_refused(versions: tuple[int, int]) -> None:
    stream = tally_stream()
    text = page(*((v, "lean.noted@1", {"text": "x"}) for v in versions))
    with pytest.raises(InvalidEvent, match="in the event sequence"):
        fold_page(registry, Tallies, start(stream), text)
