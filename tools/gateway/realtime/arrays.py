"""PostgreSQL array literals, as wal2json writes array columns (`{1,2}`, `{"a b",NULL}`), to
the JSON arrays Supabase Realtime puts in a Postgres Changes record.

The literal is read by psycopg's own text-format array loaders (its C ones, with
psycopg[binary]): quoting, escapes, NULL, nesting, explicit bounds and each type's delimiter
are psycopg's. Only the element values are Intent's choice, the JSON a client gets: numbers,
booleans and JSON documents typed, every other element (text, uuid, timestamps, enums, ...)
the string PostgreSQL wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from psycopg import DataError, abc, postgres
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Loader, Transformer
from psycopg.pq import Format
from psycopg.types.json import set_json_loads

# Loaded by psycopg's loader of the type: int, float, bool, json.loads.
_TYPED = frozenset({"int2", "int4", "int8", "oid", "float4", "float8", "bool", "json", "jsonb"})
# Elements of an array type psycopg does not know (an enum, a domain, an extension's type)
# are text, split on commas as by PostgreSQL's default delimiter.
_TEXT_ARRAY_OID = postgres.types["text"].array_oid
# A quoted element (braces in it are text), for the brace check in parse_array.
_QUOTED = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


class ArrayLiteralError(ValueError):
    pass


class _JsonNumberLoader(Loader):
    """numeric as JSON has it (as Realtime sends it): 10 an int, 2.50 the float 2.5, NaN and
    Infinity floats; not psycopg's Decimal, which JSON cannot encode."""

    def load(self, data: Buffer) -> int | float | str:
        raw = bytes(data)
        try:
            return int(raw) if raw.removeprefix(b"-").isdigit() else float(raw)
        except ValueError:  # more digits than Python's int() takes: the text, as before
            return raw.decode()


def _json_loads(data: str | bytes) -> Any:
    """json.loads on the decoded text: faster than on bytes, whose encoding it must sniff."""
    return json.loads(data.decode() if isinstance(data, bytes) else data)


def _transformer() -> abc.Transformer:
    """psycopg's adapters (a private copy) with every element type not in _TYPED loaded as
    the text PostgreSQL wrote, and numeric as a JSON number."""
    adapters = AdaptersMap(postgres.adapters)
    text = postgres.adapters.get_loader(postgres.types["text"].oid, Format.TEXT)
    assert text is not None
    for info in postgres.types:
        if info.name not in _TYPED:
            adapters.register_loader(info.oid, text)
    adapters.register_loader("numeric", _JsonNumberLoader)
    set_json_loads(_json_loads, adapters)
    return Transformer(adapters)


_TX = _transformer()
_LOADS: dict[str, Callable[[Buffer], Any]] = {}


def element_type(type_name: str) -> str | None:
    """The element type of an array type name as pg_type has it (`_int4` -> `int4`)."""
    return type_name[1:] if type_name.startswith("_") and len(type_name) > 1 else None


def parse_array(text: str, element: str) -> list[Any]:
    """`text`, a one- or more-dimensional array literal, as nested lists of values typed by
    `element` (numbers, booleans, JSON, else strings; NULL as None)."""
    if (load := _LOADS.get(element)) is None:
        info = postgres.types.get(element)
        oid = info.array_oid if info is not None and info.array_oid else _TEXT_ARRAY_OID
        load = _LOADS[element] = _TX.get_loader(oid, Format.TEXT).load
    # psycopg reads a `{` never closed as the array inside it (`{{1,2}` as [1, 2]).
    # PostgreSQL never writes one, but it is refused rather than guessed at; with a single
    # `{` (most literals) there is none.
    if text.count("{") > 1:
        bare = _QUOTED.sub("", text)
        if bare.count("{") != bare.count("}"):
            raise ArrayLiteralError(f"unbalanced braces in the array {text!r}")
    try:
        value: list[Any] = load(text.encode())
    except (DataError, ValueError) as exc:  # malformed, a JSON element that is not JSON
        raise ArrayLiteralError(f"{exc}: {text!r}") from exc
    return value
