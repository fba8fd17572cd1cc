"""Postgres Changes bindings and filters: what clients send, and which changes match."""

from __future__ import annotations

from typing import Any

import pytest

from tools.gateway.realtime.filters import (
    BindingError,
    Filter,
    binding_matches,
    filter_matches,
    parse_binding,
    parse_filter,
)

TYPES = {"id": "int8", "tenant_id": "uuid", "label": "text", "at": "timestamptz",
         "ok": "bool", "price": "numeric"}
TENANT = "6f1c1a52-2c1e-4a55-9c5b-5b0a3c0f5e11"


@pytest.mark.parametrize(("text", "expected"), [
    ("id=eq.5", Filter("id", "eq", "5")),
    ("label=neq.a.b", Filter("label", "neq", "a.b")),
    ("id=in.(1,2,3)", Filter("id", "in", ("1", "2", "3"))),
    ('label=in.("a,b",c)', Filter("label", "in", ("a,b", "c"))),
    ("label=eq.", Filter("label", "eq", "")),
])
def test_filters_parse_as_column_operator_value(text: str, expected: Filter) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("text", ["id", "id=like.a%", "id=in.1,2", "=eq.1", "id=eq"])
def test_unsupported_or_malformed_filters_are_refused(text: str) -> None:
    with pytest.raises(BindingError):
        parse_filter(text)


def test_numbers_compare_as_numbers_not_text() -> None:
    row = {"id": 10}
    assert filter_matches(parse_filter("id=gt.9"), row, TYPES)  # "10" < "9" as text
    assert not filter_matches(parse_filter("id=lt.9"), row, TYPES)
    assert filter_matches(parse_filter("id=gte.10"), row, TYPES)
    assert filter_matches(parse_filter("id=lte.10"), row, TYPES)
    assert filter_matches(parse_filter("price=eq.1.50"), {"price": 1.5}, TYPES)


def test_uuids_times_and_booleans_compare_by_their_type() -> None:
    assert filter_matches(parse_filter(f"tenant_id=eq.{TENANT.upper()}"),
                          {"tenant_id": TENANT}, TYPES)
    row = {"at": "2026-01-02 10:00:00+00"}
    assert filter_matches(parse_filter("at=gt.2026-01-02T09:30:00+00:00"), row, TYPES)
    assert not filter_matches(parse_filter("at=gt.2026-01-02T11:00:00+01:00"), row, TYPES)
    assert filter_matches(parse_filter("ok=eq.true"), {"ok": True}, TYPES)
    assert filter_matches(parse_filter("ok=neq.true"), {"ok": False}, TYPES)


def test_in_and_null_follow_sql() -> None:
    assert filter_matches(parse_filter("label=in.(a,b)"), {"label": "b"}, TYPES)
    assert not filter_matches(parse_filter("label=in.(a,b)"), {"label": "c"}, TYPES)
    assert not filter_matches(parse_filter("label=neq.a"), {"label": None}, TYPES)
    assert not filter_matches(parse_filter("label=eq.a"), {}, TYPES)


def test_a_binding_defaults_and_keeps_what_the_client_sent() -> None:
    raw: dict[str, Any] = {"event": "insert", "table": "items", "filter": "id=eq.1"}
    binding = parse_binding(raw, 3)
    assert (binding.id, binding.event, binding.schema, binding.table) == (
        3, "INSERT", "public", "items")
    assert binding.echo == raw
    with pytest.raises(BindingError):
        parse_binding({"event": "TRUNCATE", "table": "items"}, 1)
    with pytest.raises(BindingError):
        parse_binding({"event": "*", "filter": "id=eq.1"}, 1)  # a filter needs a table
    with pytest.raises(BindingError):
        parse_binding("items", 1)


def test_bindings_match_by_event_table_and_filter() -> None:
    every = parse_binding({"event": "*", "schema": "public", "table": "*"}, 1)
    inserts = parse_binding({"event": "INSERT", "table": "items",
                             "filter": f"tenant_id=eq.{TENANT}"}, 2)
    row = {"id": 1, "tenant_id": TENANT}
    other = {"id": 2, "tenant_id": "00000000-0000-0000-0000-000000000000"}
    assert binding_matches(every, "public", "anything", "DELETE", None, {"id": 1}, TYPES)
    assert not binding_matches(every, "private", "anything", "INSERT", row, None, TYPES)
    assert binding_matches(inserts, "public", "items", "INSERT", row, None, TYPES)
    assert not binding_matches(inserts, "public", "items", "INSERT", other, None, TYPES)
    assert not binding_matches(inserts, "public", "items", "UPDATE", row, row, TYPES)
    assert not binding_matches(inserts, "public", "other", "INSERT", row, None, TYPES)


def test_a_delete_without_the_filtered_column_is_not_filtered() -> None:
    deletes = parse_binding({"event": "DELETE", "table": "items",
                             "filter": f"tenant_id=eq.{TENANT}"}, 1)
    assert binding_matches(deletes, "public", "items", "DELETE", None, {"id": 7}, TYPES)
    assert not binding_matches(deletes, "public", "items", "DELETE", None,
                               {"id": 7, "tenant_id": str(TENANT[::-1])}, TYPES)
