"""PostgreSQL array literals, as wal2json writes array columns (`{1,2}`, `{"a b",NULL}`), to
the JSON arrays Supabase Realtime puts in a Postgres Changes record."""

from __future__ import annotations

import json
from typing import Any

_INTEGERS = frozenset({"int2", "int4", "int8", "oid"})
_FLOATS = frozenset({"float4", "float8", "numeric"})


class ArrayLiteralError(ValueError):
    pass


def element_type(type_name: str) -> str | None:
    """The element type of an array type name as pg_type has it (`_int4` -> `int4`)."""
    return type_name[1:] if type_name.startswith("_") and len(type_name) > 1 else None


def parse_array(text: str, element: str) -> list[Any]:
    """`text`, a one- or more-dimensional array literal, as nested lists of values typed by
    `element` (numbers, booleans, JSON, else strings; NULL as None)."""
    if text.startswith("[") and "=" in text:  # explicit bounds: `[0:1]={1,2}`
        text = text.split("=", 1)[1]
    value, end = _parse(text, 0, element)
    if end != len(text):
        raise ArrayLiteralError(f"trailing text after the array: {text[end:]!r}")
    return value


def _parse(text: str, at: int, element: str) -> tuple[list[Any], int]:
    if at >= len(text) or text[at] != "{":
        raise ArrayLiteralError(f"expected '{{' at {at} in {text!r}")
    at += 1
    items: list[Any] = []
    if at < len(text) and text[at] == "}":
        return items, at + 1
    while True:
        if at >= len(text):
            raise ArrayLiteralError(f"unterminated array {text!r}")
        if text[at] == "{":
            nested, at = _parse(text, at, element)
            items.append(nested)
        elif text[at] == '"':
            chars: list[str] = []
            at += 1
            while True:
                if at >= len(text):
                    raise ArrayLiteralError(f"unterminated quoted element in {text!r}")
                char = text[at]
                if char == "\\" and at + 1 < len(text):
                    chars.append(text[at + 1])
                    at += 2
                    continue
                if char == '"':
                    at += 1
                    break
                chars.append(char)
                at += 1
            items.append(_typed("".join(chars), element))
        else:
            start = at
            while at < len(text) and text[at] not in ",}":
                at += 1
            raw = text[start:at].strip()
            items.append(None if raw.upper() == "NULL" else _typed(raw, element))
        if at >= len(text):
            raise ArrayLiteralError(f"unterminated array {text!r}")
        if text[at] == ",":
            at += 1
            continue
        if text[at] == "}":
            return items, at + 1
        raise ArrayLiteralError(f"unexpected {text[at]!r} at {at} in {text!r}")


def _typed(raw: str, element: str) -> Any:
    try:
        if element in _INTEGERS:
            return int(raw)
        if element == "numeric" and raw.removeprefix("-").isdigit():
            return int(raw)  # as JSON would have it: 10, not 10.0
        if element in _FLOATS:
            return float(raw)
        if element == "bool":
            return raw in {"t", "true"}
        if element in {"json", "jsonb"}:
            return json.loads(raw)
    except ValueError:
        return raw
    return raw
