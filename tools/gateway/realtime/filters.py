"""Postgres Changes bindings: parsing what a client asks for, and matching changes against it
(pure: no I/O, so that the rules can be tested without a server).

A binding is `{"event", "schema", "table", "filter"}` as realtime-js and supabase-py send it.
The filter is one `column=op.value` with the operators Supabase documents for Postgres
Changes: eq, neq, lt, lte, gt, gte and in `(a,b)`. Values from the WAL are compared by the
column's type (numbers as numbers, uuids as uuids, times as times), so `id=gt.9` means the
same as it does in SQL, not as text.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

EVENTS = frozenset({"*", "INSERT", "UPDATE", "DELETE"})
OPERATORS = frozenset({"eq", "neq", "lt", "lte", "gt", "gte", "in"})
_NUMERIC_TYPES = frozenset({
    "int2", "int4", "int8", "smallint", "integer", "bigint", "numeric", "decimal",
    "float4", "float8", "real", "double precision", "oid",
})
_TIME_TYPES = frozenset({
    "timestamp", "timestamptz", "timestamp with time zone", "timestamp without time zone",
    "date",
})
_BOOL_TYPES = frozenset({"bool", "boolean"})
_FILTER = re.compile(r"^(?P<column>[^=]+)=(?P<op>[a-z]+)\.(?P<value>.*)$", re.DOTALL)


class BindingError(ValueError):
    """A binding the server cannot subscribe to; the message says which part is wrong."""


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str
    value: str | tuple[str, ...]

    def text(self) -> str:
        if isinstance(self.value, tuple):
            return f"{self.column}={self.operator}.({','.join(self.value)})"
        return f"{self.column}={self.operator}.{self.value}"


@dataclass(frozen=True)
class Binding:
    """One postgres_changes binding of a channel, with the id the join reply gave it."""

    id: int
    event: str
    schema: str
    table: str
    filter: Filter | None
    # What the client sent, echoed back in the join reply exactly as received.
    echo: dict[str, Any]

    def wants(self, schema: str, table: str, change_type: str) -> bool:
        return (
            self.schema == schema
            and self.table in {"*", table}
            and self.event in {"*", change_type}
        )


def parse_filter(text: str) -> Filter:
    """`column=op.value` (in: `column=in.(a,b,"c,d")`)."""
    match = _FILTER.match(text.strip())
    if match is None:
        raise BindingError(f"invalid filter {text!r}: expected column=operator.value")
    column, operator, value = match["column"].strip(), match["op"], match["value"]
    if operator not in OPERATORS:
        raise BindingError(
            f"invalid filter {text!r}: operator {operator!r} is not one of "
            f"{', '.join(sorted(OPERATORS))}"
        )
    if operator == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise BindingError(f"invalid filter {text!r}: `in` takes a list like (a,b)")
        return Filter(column, operator, tuple(_split_list(value[1:-1])))
    return Filter(column, operator, value)


def _split_list(inner: str) -> list[str]:
    """Comma-separated values; double quotes keep commas inside one value."""
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for char in inner:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current or values:
        values.append("".join(current).strip())
    return [v for v in values if v != ""]


def parse_binding(raw: Any, binding_id: int) -> Binding:
    """A client's binding, checked for shape (the table's existence is checked later)."""
    if not isinstance(raw, dict):
        raise BindingError("a postgres_changes binding is an object")
    event = raw.get("event", "*")
    if not isinstance(event, str) or event.upper() not in EVENTS:
        raise BindingError(f"event must be one of *, INSERT, UPDATE, DELETE, not {event!r}")
    schema = raw.get("schema") or "public"
    table = raw.get("table") or "*"
    if not isinstance(schema, str) or not isinstance(table, str):
        raise BindingError("schema and table must be strings")
    filter_text = raw.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise BindingError("filter must be a string")
    parsed = parse_filter(filter_text) if filter_text else None
    if parsed is not None and table == "*":
        raise BindingError("a filter needs a table")
    return Binding(binding_id, event.upper(), schema, table, parsed, dict(raw))


def _coerce(value: Any, column_type: str) -> Any:
    """A WAL value or a filter's text in a form whose ordering is the column type's."""
    if value is None:
        return None
    kind = column_type.lower()
    try:
        if kind in _NUMERIC_TYPES:
            return Decimal(str(value))
        if kind in _BOOL_TYPES:
            if isinstance(value, bool):
                return value
            return str(value).lower() in {"t", "true", "1", "yes", "on", "y"}
        if kind == "uuid":
            return uuid.UUID(str(value))
        if kind in _TIME_TYPES:
            return datetime.fromisoformat(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return str(value)


def _compare(left: Any, right: Any, operator: str) -> bool:
    try:
        match operator:
            case "eq":
                return bool(left == right)
            case "neq":
                return bool(left != right)
            case "lt":
                return bool(left < right)
            case "lte":
                return bool(left <= right)
            case "gt":
                return bool(left > right)
            case "gte":
                return bool(left >= right)
    except TypeError:  # e.g. naive and aware times, or a number against text
        return False
    raise ValueError(f"unknown operator {operator!r}")


def filter_matches(f: Filter, row: dict[str, Any], types: dict[str, str]) -> bool:
    """Whether a row (column -> WAL value) passes the filter; SQL's NULL never matches."""
    if f.column not in row:
        return False
    column_type = types.get(f.column, "text")
    left = _coerce(row[f.column], column_type)
    if left is None:
        return False
    if isinstance(f.value, tuple):
        return any(_compare(left, _coerce(v, column_type), "eq") for v in f.value)
    return _compare(left, _coerce(f.value, column_type), f.operator)


def binding_matches(
    binding: Binding, schema: str, table: str, change_type: str,
    record: dict[str, Any] | None, old_record: dict[str, Any] | None, types: dict[str, str],
) -> bool:
    """Whether a change is one the binding asked for. The filter is tested on the new row
    (the old one for a DELETE); a DELETE whose old row lacks the filter's column (only the
    key is logged) passes, as Supabase does not filter deletes it cannot see."""
    if not binding.wants(schema, table, change_type):
        return False
    if binding.filter is None:
        return True
    row = old_record if change_type == "DELETE" else record
    if row is None:
        return False
    if change_type == "DELETE" and binding.filter.column not in row:
        return True
    return filter_matches(binding.filter, row, types)
