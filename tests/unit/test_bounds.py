"""domain.bounds: the default bounds a payload model gets, the limits the SQL ingress checks,
and the registry's own check."""

from __future__ import annotations

from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from domain.bounds import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_STRING_LENGTH,
    bounded_schema,
    field_limits,
    first_violation,
)
from domain.contracts import Command, Metadata
from domain.errors import InvalidCommand
from projections.shop import registry
from tools.codegen.json_schemas import payload_schema


class Line(BaseModel):
    sku: str = Field(max_length=10)
    count: int = Field(gt=0, le=10**30)  # wider than int64: clamped


class Order(BaseModel):
    note: str | None = None
    ratio: float
    lines: list[Line]
    code: str = Field(pattern="^[A-Z]+$", max_length=100_000)


def test_integers_get_int64_and_strings_the_default_length_where_the_model_says_nothing() -> None:
    schema = bounded_schema({"type": "object", "properties": {
        "n": {"type": "integer"}, "s": {"type": "string"}, "u": {"type": "string",
                                                                  "format": "uuid"}}})
    props = schema["properties"]
    assert props["n"] == {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    assert props["s"] == {"type": "string", "maxLength": MAX_STRING_LENGTH}
    assert props["u"] == {"type": "string", "format": "uuid"}


def test_a_declared_bound_stays_when_tighter_and_is_clamped_when_wider() -> None:
    schema = payload_schema(Order, "test.order")
    line = schema["properties"]["lines"]["items"]["properties"]
    assert line["count"]["exclusiveMinimum"] == 0
    assert "minimum" not in line["count"]
    assert line["count"]["maximum"] == INT64_MAX
    assert line["sku"]["maxLength"] == 10
    assert schema["properties"]["code"]["maxLength"] == MAX_STRING_LENGTH


def test_field_limits_reach_nested_objects_array_items_and_optional_fields() -> None:
    limits = {limit["field"]: limit for limit in field_limits(payload_schema(Order, "t.o"))}
    assert set(limits) == {"(payload)", "note", "ratio", "lines[]", "lines[].sku",
                           "lines[].count", "code"}
    assert limits["(payload)"]["required"] == ["code", "lines", "ratio"]
    assert "properties" not in limits["(payload)"]  # the model allows other keys
    assert limits["lines[]"]["path"] == '$."lines"[*]'
    assert limits["lines[]"]["required"] == ["count", "sku"]
    assert limits["lines[].count"]["path"] == '$."lines"[*]."count"'
    assert limits["note"]["maxLength"] == MAX_STRING_LENGTH
    assert limits["ratio"]["type"] == "number"


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"q": 2**63}, "q", "between"),
        ({"q": INT64_MIN - 1}, "q", "between"),
        ({"a": [{"b": float("inf")}]}, "a[].b", "finite"),
        ({"s": "x" * (MAX_STRING_LENGTH + 1)}, "s", "at most"),
    ],
)
def test_a_value_outside_the_defaults_is_named(payload: object, field: str, says: str) -> None:
    found = first_violation(payload)
    assert found is not None
    assert found.field == field
    assert says in found.message


def test_nesting_deeper_than_the_limit_is_refused_without_recursion() -> None:
    deep: object = 1
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert first_violation({"x": 1}) is None
    assert first_violation(deep) is None  # MAX_DEPTH levels of lists: allowed
    found = first_violation([deep])
    assert found is not None
    assert "nested" in found.message
    very_deep: object = 0
    for _ in range(100_000):
        very_deep = [very_deep]
    assert first_violation(very_deep) is not None


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_an_integer_passes_exactly_when_int64_holds_it(value: int) -> None:
    assert (first_violation({"n": value}) is None) == (INT64_MIN <= value <= INT64_MAX)


def test_the_registry_refuses_a_command_beyond_int64_naming_the_field() -> None:
    command = Command(
        command_id=uuid4(),
        command_type="inventory.receive_stock",
        payload={"item_id": str(uuid4()), "quantity": 2**63},
        metadata=Metadata(tenant_id=uuid4(), correlation_id=uuid4()),
    )
    with pytest.raises(InvalidCommand, match="quantity") as raised:
        registry.parse_command(command)
    assert raised.value.details["errors"][0]["field"] == "quantity"
    ok = command.model_copy(update={"payload": {"item_id": str(uuid4()), "quantity": INT64_MAX}})
    assert registry.parse_command(ok).payload.quantity == INT64_MAX  # type: ignore[attr-defined]
