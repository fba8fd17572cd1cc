"""How large a value a command may carry: the one declaration every check comes from.

A command's payload model says what it accepts (pydantic `Field(ge=, le=, max_length=)` or
an annotated type). Where it says nothing, these defaults hold: every integer fits int64
(what the store's and the read models' bigint columns hold), every other number is a finite
double, every string is at most `MAX_STRING_LENGTH` characters. A model may only tighten
them: a wider declaration is clamped, so that the three places that check a payload agree:

- the edge function validates against the JSON Schema, made by `bounded_schema` from the
  model's own schema (tools.codegen.json_schemas);
- the SQL ingress (`public.submit_command`) checks the `field_limits` of that schema,
  stored with each command type (tools.codegen.command_types);
- the registry checks `first_violation` before the model validates (the path of commands
  written by sagas and by the runtime itself).

Pure: JSON Schema dictionaries and plain values in, no I/O.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
DOUBLE_MAX = sys.float_info.max
MAX_STRING_LENGTH = 16_384
# Nesting of objects and arrays in one payload (the payload itself is depth 1).
MAX_DEPTH = 32

_SUBSCHEMA = ("additionalProperties", "items", "not")
_SUBSCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs")


def bounded_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a JSON Schema with the default bounds filled in, and wider ones clamped,
    at every integer, number and string it declares."""
    bounded = copy.deepcopy(dict(schema))
    for node in _subschemas(bounded):
        _bound(node)
    return bounded


def _subschemas(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every (sub)schema object, the root included."""
    stack = [schema]
    while stack:
        node = stack.pop()
        yield node
        for key in _SUBSCHEMA:
            if isinstance(node.get(key), dict):
                stack.append(node[key])
        for key in _SUBSCHEMA_LISTS:
            stack.extend(child for child in node.get(key, ()) if isinstance(child, dict))
        for key in _SUBSCHEMA_MAPS:
            stack.extend(child for child in node.get(key, {}).values() if isinstance(child, dict))


def _bound(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind == "integer":
        _clamp(node, INT64_MIN, INT64_MAX)
    elif kind == "number":
        _clamp(node, -DOUBLE_MAX, DOUBLE_MAX)
    elif kind == "string" and "format" not in node and "enum" not in node:
        node["maxLength"] = min(node.get("maxLength", MAX_STRING_LENGTH), MAX_STRING_LENGTH)


def _clamp(node: dict[str, Any], low: float, high: float) -> None:
    """Clamp the inclusive bounds; an exclusive bound already inside the range stays."""
    if not _within(node.get("exclusiveMinimum"), low, high):
        node.pop("exclusiveMinimum", None)
        node["minimum"] = max(node.get("minimum", low), low)
    if not _within(node.get("exclusiveMaximum"), low, high):
        node.pop("exclusiveMaximum", None)
        node["maximum"] = min(node.get("maximum", high), high)


def _within(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and low <= value <= high


def field_limits(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The bounds of a (bounded, self-contained) object schema as flat checks the SQL
    ingress can run: one per object (its required keys, and its only keys when it allows no
    others; the payload's also its nesting, MAX_DEPTH) and per integer, number or string
    field, reached through object properties and array items (`[*]`), with the field's
    name for the error message and a JSON path to its values. Fields under a union other
    than "T or null" are left to the edge function and the model."""
    limits: list[dict[str, Any]] = []
    stack: list[tuple[Mapping[str, Any], str, str]] = [(schema, "$", "")]
    while stack:
        node, path, name = stack.pop()
        node = _non_null(node)
        kind = node.get("type")
        if kind == "object":
            properties = node.get("properties", {})
            shape: dict[str, Any] = {"field": name or "(payload)", "path": path,
                                     "type": "object"}
            if not name:
                shape["maxDepth"] = MAX_DEPTH
            if node.get("required"):
                shape["required"] = sorted(node["required"])
            if node.get("additionalProperties") is False:
                shape["properties"] = sorted(properties)
            limits.append(shape)
            for key, child in sorted(properties.items(), reverse=True):
                stack.append((child, f'{path}."{_path_key(key)}"', f"{name}.{key}" if name
                              else key))
        elif kind == "array" and isinstance(node.get("items"), Mapping):
            stack.append((node["items"], f"{path}[*]", f"{name}[]"))
        elif kind in ("integer", "number", "string") and name:
            limit: dict[str, Any] = {"field": name, "path": path, "type": kind}
            for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                        "minLength", "maxLength"):
                if key in node:
                    limit[key] = node[key]
            limits.append(limit)
    return limits


def _non_null(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """`T or null` (pydantic's Optional) seen as T; anything else as it is."""
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2:
        others = [b for b in branches if b.get("type") != "null"]
        if len(others) == 1:
            return dict(others[0])
    return node


def _path_key(key: str) -> str:
    return key.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Violation:
    field: str  # dotted, `[]` for array items, "(payload)" for the payload itself
    message: str

    def __str__(self) -> str:
        return f"{self.field} {self.message}"


def first_violation(value: Any) -> Violation | None:
    """Where a JSON value leaves the default bounds (None when it does not). Iterative, so
    a deep value cannot exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "(payload)", 1)]
    while stack:
        item, name, depth = stack.pop()
        if isinstance(item, dict | list) and depth > MAX_DEPTH:
            return Violation(name, f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            stack.extend((child, str(key) if depth == 1 else f"{name}.{key}", depth + 1)
                         for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{name}[]", depth + 1) for child in item)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and not INT64_MIN <= item <= INT64_MAX:
            return Violation(name, f"must be between {INT64_MIN} and {INT64_MAX}")
        elif isinstance(item, float) and not math.isfinite(item):
            return Violation(name, "must be a finite number")
        elif isinstance(item, str) and len(item) > MAX_STRING_LENGTH:
            return Violation(name, f"must be at most {MAX_STRING_LENGTH} characters")
    return None
