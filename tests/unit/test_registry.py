from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, Field

from domain.aggregate import Aggregate
from domain.contracts import Event, StreamId
from domain.errors import (
    Forbidden,
    InvalidCommand,
    InvalidEvent,
    RegistryError,
    UnknownAggregateType,
    UnknownCommandType,
    UnknownEventType,
)
from domain.registry import Registry
from tests.support.builders import OTHER_TENANT, TENANT, command, metadata


class TallyState(BaseModel):
    cents: int = 0


class Tally(Aggregate[TallyState]):
    type_name = "test.tally"
    state_model = TallyState

    @classmethod
    def decide(cls, command: BaseModel, state: TallyState) -> Sequence[BaseModel]:
        return []


class AddAmount(BaseModel):
    tally_id: UUID
    cents: int = Field(gt=0)
    note: str


class AmountAdded(BaseModel):
    """v3. v1 held `amount` as a string of whole units; v2 made it an int; v3 counts cents."""

    amount_cents: int


class Other(BaseModel):
    value: int = 0


def tally_registry() -> tuple[Registry, list[str]]:
    """A fresh registry with a three-version event, and a trail of the upcasters it ran."""
    registry = Registry()
    trail: list[str] = []
    registry.aggregate(Tally)
    registry.event("test.amount_added", version=3)(AmountAdded)
    registry.command(
        "test.add_amount", aggregate=Tally, aggregate_id="tally_id", roles={"authenticated"}
    )(AddAmount)

    @registry.upcaster("test.amount_added", from_version=1)
    def whole_units_as_int(payload: dict[str, Any]) -> dict[str, Any]:
        trail.append("v1->v2")
        return {"amount": int(payload["amount"])}

    @registry.upcaster("test.amount_added", from_version=2)
    def units_to_cents(payload: dict[str, Any]) -> dict[str, Any]:
        trail.append("v2->v3")
        return {"amount_cents": payload["amount"] * 100}

    registry.validate()
    return registry, trail


def stored(event_type: str, schema_version: int, payload: dict[str, Any]) -> Event:
    tally_id = uuid4()
    return Event(
        event_id=uuid4(),
        event_type=event_type,
        schema_version=schema_version,
        stream=StreamId(tenant_id=TENANT, aggregate_type="test.tally", aggregate_id=tally_id),
        version=1,
        payload=payload,
        metadata=metadata(),
    )


def test_upcasters_run_in_order_from_the_stored_version_to_the_current_one() -> None:
    registry, trail = tally_registry()
    assert registry.upcast("test.amount_added", 1, {"amount": "5"}) == (3, {"amount_cents": 500})
    assert trail == ["v1->v2", "v2->v3"]


def test_upcasting_starts_at_the_stored_version() -> None:
    registry, trail = tally_registry()
    assert registry.upcast("test.amount_added", 2, {"amount": 7}) == (3, {"amount_cents": 700})
    assert trail == ["v2->v3"]


def test_a_current_payload_is_not_upcast() -> None:
    registry, trail = tally_registry()
    assert registry.upcast("test.amount_added", 3, {"amount_cents": 1}) == (3, {"amount_cents": 1})
    assert trail == []


def test_upcasting_leaves_the_callers_payload_alone() -> None:
    registry, _ = tally_registry()
    payload = {"amount": "5"}
    registry.upcast("test.amount_added", 1, payload)
    assert payload == {"amount": "5"}


@pytest.mark.parametrize("version", [0, 4])
def test_a_schema_version_outside_the_known_range_is_refused(version: int) -> None:
    registry, _ = tally_registry()
    with pytest.raises(InvalidEvent, match=f"schema version {version}"):
        registry.upcast("test.amount_added", version, {"amount_cents": 1})


def test_an_upcaster_that_cannot_read_the_payload_gives_invalid_event() -> None:
    registry, _ = tally_registry()
    with pytest.raises(InvalidEvent, match="upcasting from v1 failed"):
        registry.upcast("test.amount_added", 1, {"unexpected": True})


def test_load_event_upcasts_then_builds_the_typed_payload() -> None:
    registry, _ = tally_registry()
    loaded = registry.load_event(stored("test.amount_added", 1, {"amount": "2"}))
    assert loaded == AmountAdded(amount_cents=200)


def test_load_event_refuses_a_payload_that_does_not_fit_its_model() -> None:
    registry, _ = tally_registry()
    with pytest.raises(InvalidEvent, match="amount_cents") as caught:
        registry.load_event(stored("test.amount_added", 3, {"amount_cents": "lots"}))
    assert caught.value.code == "invalid_event"


def test_unknown_event_types_are_refused() -> None:
    registry, _ = tally_registry()
    with pytest.raises(UnknownEventType) as caught:
        registry.upcast("test.nothing_happened", 1, {})
    assert caught.value.code == "unknown_event_type"
    with pytest.raises(UnknownEventType):
        registry.load_event(stored("test.nothing_happened", 1, {}))


def test_validate_finds_a_missing_upcaster_link() -> None:
    registry = Registry()
    registry.event("test.amount_added", version=3)(AmountAdded)
    registry.upcaster("test.amount_added", from_version=1)(lambda payload: payload)
    with pytest.raises(RegistryError, match="no upcaster from version 2 to 3"):
        registry.validate()


def test_validate_finds_upcasters_that_lead_nowhere() -> None:
    registry = Registry()
    registry.event("test.amount_added")(AmountAdded)
    registry.upcaster("test.amount_added", from_version=1)(lambda payload: payload)
    registry.upcaster("test.gone", from_version=1)(lambda payload: payload)
    with pytest.raises(RegistryError) as caught:
        registry.validate()
    assert caught.value.details["problems"] == [
        "upcaster test.amount_added v1 goes beyond the current version 1",
        "upcaster for unknown event type test.gone",
    ]


def test_validate_finds_commands_for_unregistered_aggregates() -> None:
    registry = Registry()
    registry.command(
        "test.add_amount", aggregate=Tally, aggregate_id="tally_id", roles={"authenticated"}
    )(AddAmount)
    with pytest.raises(
        RegistryError, match=re.escape("aggregate test.tally, which is not registered")
    ):
        registry.validate()


def test_validate_finds_an_aggregate_whose_initial_state_cannot_be_built() -> None:
    class NeedsValue(BaseModel):
        value: int

    class Broken(Aggregate[NeedsValue]):
        type_name = "test.broken"
        state_model = NeedsValue

    registry = Registry()
    registry.aggregate(Broken)
    with pytest.raises(RegistryError, match="initial_state failed"):
        registry.validate()


def test_duplicate_declarations_are_refused() -> None:
    registry, _ = tally_registry()
    with pytest.raises(RegistryError, match="declared twice"):
        registry.event("test.amount_added")(Other)
    with pytest.raises(RegistryError, match=re.escape("already the payload of test.amount_added")):
        registry.event("test.other")(AmountAdded)
    with pytest.raises(RegistryError, match="declared twice"):
        registry.upcaster("test.amount_added", from_version=1)(lambda payload: payload)
    with pytest.raises(RegistryError, match="declared twice"):
        registry.command(
            "test.add_amount", aggregate=Tally, aggregate_id="tally_id", roles={"authenticated"}
        )(AddAmount)
    with pytest.raises(RegistryError, match="declared twice"):
        registry.aggregate(Tally)


def test_including_a_clashing_registry_is_refused_and_changes_nothing() -> None:
    registry, _ = tally_registry()
    other = Registry()
    other.event("test.other")(Other)
    other.aggregate(Tally)
    with pytest.raises(RegistryError, match=re.escape("aggregate type test.tally")):
        registry.include(other)
    assert "test.other" not in registry.event_types()


def test_include_composes_slices() -> None:
    slice_a, _ = tally_registry()
    slice_b = Registry()
    slice_b.event("test.other")(Other)
    app = Registry()
    app.include(slice_a)
    app.include(slice_b)
    app.validate()
    assert set(app.event_types()) == {"test.amount_added", "test.other"}
    assert app.aggregate_type("test.tally") is Tally


@pytest.mark.parametrize("name", ["Test.Bad", "test..bad", "test bad"])
def test_invalid_names_are_refused_when_declared(name: str) -> None:
    registry = Registry()
    with pytest.raises(RegistryError, match="not a valid type name"):
        registry.event(name)
    with pytest.raises(RegistryError, match="not a valid type name"):
        registry.command(name, aggregate=Tally, aggregate_id="tally_id", roles={"authenticated"})


def test_a_command_needs_a_uuid_field_naming_its_aggregate() -> None:
    registry = Registry()
    with pytest.raises(RegistryError, match="UUID field 'missing'"):
        registry.command(
            "test.add_amount", aggregate=Tally, aggregate_id="missing", roles={"authenticated"}
        )(AddAmount)
    with pytest.raises(RegistryError, match="UUID field 'note'"):
        registry.command(
            "test.add_amount", aggregate=Tally, aggregate_id="note", roles={"authenticated"}
        )(AddAmount)


def test_a_command_needs_at_least_one_role() -> None:
    with pytest.raises(RegistryError, match="roles"):
        Registry().command("test.add_amount", aggregate=Tally, aggregate_id="tally_id", roles=[])


def test_parse_command_types_the_payload_and_finds_the_stream() -> None:
    registry, _ = tally_registry()
    tally_id = uuid4()
    envelope = command(
        "test.add_amount",
        {"tally_id": str(tally_id), "cents": 5, "note": "tip"},
        meta=metadata(tenant_id=OTHER_TENANT),
    )
    parsed = registry.parse_command(envelope)
    assert parsed.payload == AddAmount(tally_id=tally_id, cents=5, note="tip")
    assert parsed.envelope is envelope
    assert parsed.command_type.aggregate is Tally
    assert (parsed.stream.tenant_id, parsed.stream.aggregate_type, parsed.stream.aggregate_id) == (
        OTHER_TENANT,
        "test.tally",
        tally_id,
    )


def test_an_invalid_payload_gives_invalid_command_naming_the_fields() -> None:
    registry, _ = tally_registry()
    envelope = command("test.add_amount", {"tally_id": str(uuid4()), "cents": 0})
    with pytest.raises(InvalidCommand) as caught:
        registry.parse_command(envelope)
    error = caught.value
    assert error.code == "invalid_command"
    assert "cents: Input should be greater than 0" in error.message
    assert "note: Field required" in error.message
    assert {row["field"] for row in error.details["errors"]} == {"cents", "note"}


def test_unknown_command_types_are_refused() -> None:
    registry, _ = tally_registry()
    with pytest.raises(UnknownCommandType) as caught:
        registry.parse_command(command("test.do_nothing", {}))
    assert caught.value.code == "unknown_command_type"
    with pytest.raises(UnknownCommandType):
        registry.check_role("test.do_nothing", "authenticated")


def test_unknown_aggregate_types_are_refused() -> None:
    registry, _ = tally_registry()
    with pytest.raises(UnknownAggregateType):
        registry.aggregate_type("test.nothing")


def test_a_role_not_listed_for_a_command_is_forbidden() -> None:
    registry, _ = tally_registry()
    registry.check_role("test.add_amount", "authenticated")
    with pytest.raises(Forbidden) as caught:
        registry.check_role("test.add_amount", "anon")
    assert caught.value.as_dict()["code"] == "forbidden"


def test_event_name_finds_the_registered_type_of_a_payload() -> None:
    registry, _ = tally_registry()
    event_type = registry.event_name(AmountAdded(amount_cents=1))
    assert (event_type.name, event_type.version) == ("test.amount_added", 3)
    with pytest.raises(RegistryError, match="not a registered event payload model"):
        registry.event_name(Other())


def test_lookups_are_read_only() -> None:
    registry, _ = tally_registry()
    with pytest.raises(TypeError):
        registry.event_types()["test.x"] = registry.event_types()["test.amount_added"]  # type: ignore[index]
