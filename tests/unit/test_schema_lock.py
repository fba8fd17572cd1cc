"""The schema lock: an event or command payload change that would refuse what used to be
valid is refused by `intent generate` and `--check`, naming the type and the field."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field

from domain.aggregate import Aggregate
from domain.registry import Registry
from projections.shop import registry as shop_registry
from tools.cli.generate import check_schema_lock, generate_schema_lock
from tools.cli.generate import generate as generate_command
from tools.codegen.schema_compat import narrowings
from tools.codegen.schema_lock import LOCK_PATH, LockError, check, generate, plan, render

EVENT = "test.thing_happened"
COMMAND = "test.do_thing"
Upcast = Callable[[dict[str, Any]], dict[str, Any]]


class _State(BaseModel):
    model_config = ConfigDict(frozen=True)


class _Thing(Aggregate[_State]):
    type_name = "test.thing"
    state_model = _State

    @classmethod
    def decide(cls, command: BaseModel, state: _State) -> Sequence[BaseModel]:
        return []

    @classmethod
    def evolve(cls, state: _State, event: BaseModel) -> _State:
        return state


def _registry(
    event: type[BaseModel], *, version: int = 1, upcasters: Sequence[int] = (),
    command: type[BaseModel] | None = None,
) -> Registry:
    """A registry of one event type (at `version`, with upcasters from `upcasters`) and,
    when given, one command type."""
    registry = Registry()
    registry.aggregate(_Thing)
    registry.event(EVENT, version=version)(event)
    for from_version in upcasters:
        registry.upcaster(EVENT, from_version=from_version)(lambda payload: payload)
    if command is not None:
        registry.command(COMMAND, aggregate=_Thing, aggregate_id="thing_id",
                         roles=["authenticated"])(command)
    return registry


def _locked(registry: Registry) -> dict[str, Any]:
    """The lock as `intent generate` would write it for `registry` on an empty tree."""
    result = plan(None, registry)
    assert not result.refused
    loaded: dict[str, Any] = json.loads(render(result.document))
    return loaded


def _refusals(before: Registry, after: Registry) -> list[str]:
    return list(plan(_locked(before), after).refused)


# -- event payloads ---------------------------------------------------------------------------


class V1(BaseModel):
    thing_id: UUID
    quantity: int
    colour: Literal["red", "green", "blue"] = "red"


class Removed(BaseModel):
    thing_id: UUID
    colour: Literal["red", "green", "blue"] = "red"


class Renamed(BaseModel):
    thing_id: UUID
    qty: int
    colour: Literal["red", "green", "blue"] = "red"


class Retyped(BaseModel):
    thing_id: UUID
    quantity: str
    colour: Literal["red", "green", "blue"] = "red"


class NewRequired(V1):
    reason: str


class Narrowed(BaseModel):
    thing_id: UUID
    quantity: int
    colour: Literal["red", "green"] = "red"


class NewOptional(V1):
    note: str | None = None


class Widened(BaseModel):
    thing_id: UUID
    quantity: float | None
    colour: Literal["red", "green", "blue", "black"] = "red"


@pytest.mark.parametrize(
    ("model", "field", "reason"),
    [
        (Removed, "quantity", "removed"),
        (Renamed, "quantity", "renamed (to `qty`?)"),
        (Retyped, "quantity", "type changed from integer to string"),
        (NewRequired, "reason", "a new required field without a default"),
        (Narrowed, "colour", "enum narrowed: 'blue' no longer accepted"),
    ],
)
def test_an_incompatible_event_change_at_the_same_version_is_refused(
    model: type[BaseModel], field: str, reason: str
) -> None:
    refused = _refusals(_registry(V1), _registry(model))
    assert refused, "the change must be refused"
    message = next(line for line in refused if f"field `{field}`" in line)
    assert message.startswith(f"event type {EVENT}, field `{field}`: ")
    assert reason in message
    assert f"registry.event({EVENT!r}, version=2)" in message
    assert "upcaster from 1" in message


@pytest.mark.parametrize("model", [Removed, Renamed, Retyped, NewRequired, Narrowed])
def test_a_version_bump_without_an_upcaster_is_still_refused(model: type[BaseModel]) -> None:
    refused = _refusals(_registry(V1), _registry(model, version=2))
    assert refused
    assert all(line.startswith(f"event type {EVENT}, field `") for line in refused)
    assert all(f"registry.upcaster({EVENT!r}, from_version=1)" in line for line in refused)


def test_a_version_bump_with_an_upcaster_adds_the_version_and_keeps_the_old_one() -> None:
    before = _locked(_registry(V1))
    result = plan(before, _registry(Renamed, version=2, upcasters=[1]))
    assert result.refused == ()
    entry = result.document["events"][EVENT]
    assert entry["version"] == 2
    assert entry["schemas"]["1"] == before["events"][EVENT]["schemas"]["1"]
    assert "qty" in entry["schemas"]["2"]["properties"]
    assert "quantity" not in entry["schemas"]["2"]["properties"]
    assert result.changes == (f"  + event {EVENT} v2 (upcast from v1)",)


def test_the_next_change_is_compared_with_the_newest_locked_version() -> None:
    locked = json.loads(render(plan(_locked(_registry(V1)),
                                    _registry(Renamed, version=2, upcasters=[1])).document))
    refused = list(plan(locked, _registry(V1, version=2, upcasters=[1])).refused)
    assert any("field `qty`: removed" in line and "version=3" in line for line in refused)


def test_a_version_going_back_is_refused() -> None:
    locked = _locked(_registry(V1, version=2, upcasters=[1]))
    assert plan(locked, _registry(V1)).refused == (
        f"event type {EVENT}: version 1 is below the locked version 2; versions only go up",
    )


@pytest.mark.parametrize("model", [NewOptional, Widened])
def test_an_optional_field_or_a_widening_is_accepted(model: type[BaseModel]) -> None:
    result = plan(_locked(_registry(V1)), _registry(model))
    assert result.refused == ()
    assert result.document["events"][EVENT]["version"] == 1
    assert result.changes == (f"  ~ event {EVENT} v1: compatible change",)


def test_an_event_type_no_longer_registered_is_refused() -> None:
    locked = _locked(_registry(V1))
    locked["events"]["test.gone"] = locked["events"][EVENT]
    refused = plan(locked, _registry(V1)).refused
    assert len(refused) == 1
    assert refused[0].startswith("event type test.gone is locked (version 1) but no longer")


class _Line(BaseModel):
    sku: str
    quantity: int


class _LineNarrowed(BaseModel):
    sku: str
    quantity: int = Field(le=10)


class Nested(BaseModel):
    thing_id: UUID
    lines: list[_Line]


class NestedNarrowed(BaseModel):
    thing_id: UUID
    lines: list[_LineNarrowed]


def test_a_nested_model_is_compared_through_its_definition() -> None:
    refused = _refusals(_registry(Nested), _registry(NestedNarrowed))
    assert len(refused) == 1
    assert refused[0].startswith(f"event type {EVENT}, field `lines[].quantity`: upper bound "
                                 "lowered from none to 10")


class _Colour(Enum):
    RED = "red"
    BLUE = "blue"


class _FewerColours(Enum):
    RED = "red"


class _Painted(BaseModel):
    colour: _Colour


class _PaintedFewer(BaseModel):
    colour: _FewerColours


def test_an_enum_class_losing_a_member_narrows() -> None:
    old, new = _Painted, _PaintedFewer
    found = narrowings(old.model_json_schema(), new.model_json_schema(), "event")
    assert [(n.field, n.reason) for n in found] == [
        ("colour", "enum narrowed: 'blue' no longer accepted")
    ]


# -- command payloads -------------------------------------------------------------------------


class Do(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thing_id: UUID
    amount: float
    label: str = Field(max_length=100)


class DoNarrowedType(Do):
    amount: int


class DoNewRequired(Do):
    reason: str


class DoShorterLabel(Do):
    label: str = Field(max_length=50)


class DoRaisedMinimum(Do):
    amount: float = Field(ge=1)


class DoWithoutLabel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thing_id: UUID
    amount: float


class DoNewOptional(Do):
    note: str | None = Field(default=None, max_length=500)


@pytest.mark.parametrize(
    ("model", "field", "reason"),
    [
        (DoNarrowedType, "amount", "type changed from number to integer"),
        (DoNewRequired, "reason", "a new required field without a default"),
        (DoShorterLabel, "label", "maxLength lowered from 100 to 50"),
        (DoRaisedMinimum, "amount", "lower bound raised from none to 1"),
        (DoWithoutLabel, "label", "removed while extra fields are forbidden"),
    ],
)
def test_a_command_change_refusing_valid_input_is_refused(
    model: type[BaseModel], field: str, reason: str
) -> None:
    refused = _refusals(_registry(V1, command=Do), _registry(V1, command=model))
    assert len(refused) == 1
    assert refused[0].startswith(f"command type {COMMAND}, field `{field}`: {reason}")
    assert "Commands have no versions" in refused[0]
    assert "declare a new command type" in refused[0]


class _Two(BaseModel):
    a: int
    b: int


class _One(BaseModel):
    a: int


def test_a_command_field_removed_while_extra_is_ignored_is_accepted() -> None:
    old, new = _Two, _One
    assert narrowings(old.model_json_schema(), new.model_json_schema(), "command") == []
    assert narrowings(old.model_json_schema(), new.model_json_schema(), "event") != []


def test_a_new_optional_command_field_is_accepted() -> None:
    result = plan(_locked(_registry(V1, command=Do)), _registry(V1, command=DoNewOptional))
    assert result.refused == ()
    assert "note" in result.document["commands"][COMMAND]["schema"]["properties"]


# -- the file and the command line ------------------------------------------------------------


def test_generate_writes_a_deterministic_lock_and_refuses_without_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "schema.lock.json"
    assert generate(path, _registry(V1)).written
    text = path.read_text(encoding="utf-8")
    assert not generate(path, _registry(V1)).written
    assert check(path, _registry(V1)).ok
    with pytest.raises(LockError, match=r"field `quantity`: removed"):
        generate(path, _registry(Removed))
    assert path.read_text(encoding="utf-8") == text, "a refused change writes nothing"
    stale = check(path, _registry(NewOptional))
    assert not stale.ok
    assert f"~ event {EVENT} v1: compatible change" in stale.message


def test_the_committed_lock_matches_the_registry() -> None:
    assert check(LOCK_PATH, shop_registry).ok, check(LOCK_PATH, shop_registry).message


def test_the_cli_check_exits_1_naming_the_type_and_field(tmp_path: Path) -> None:
    locked = json.loads(LOCK_PATH.read_text(encoding="utf-8"))
    entry = locked["events"]["inventory.item_registered"]
    schema = entry["schemas"][str(entry["version"])]
    schema["properties"]["colour"] = {"type": "string"}  # a field the model has not got
    path = tmp_path / "schema.lock.json"
    path.write_text(render(locked), encoding="utf-8")
    before = path.read_text(encoding="utf-8")

    outcome = CliRunner().invoke(generate_command, ["--check", "--schema-lock", str(path)])
    assert outcome.exit_code == 1, outcome.output
    flat = " ".join(outcome.output.split())
    assert "event type inventory.item_registered, field `colour`: removed" in flat
    assert "registry.event('inventory.item_registered', version=2)" in flat
    assert "stale: schema lock;" in flat
    assert path.read_text(encoding="utf-8") == before

    assert generate_schema_lock(path, shop_registry) == 1
    assert path.read_text(encoding="utf-8") == before, "generate refuses too, writing nothing"
    assert check_schema_lock(LOCK_PATH, shop_registry) == 0
