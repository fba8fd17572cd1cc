"""Array columns in Postgres Changes: wal2json's array literals become JSON arrays."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tools.gateway.realtime.arrays import ArrayLiteralError, element_type, parse_array


@pytest.mark.parametrize(("text", "element", "expected"), [
    ("{}", "int4", []),
    ("{1,2,-3}", "int4", [1, 2, -3]),
    ("{1.5,NULL,2}", "float8", [1.5, None, 2.0]),
    ("{10,2.50}", "numeric", [10, 2.5]),
    ("{t,f,NULL}", "bool", [True, False, None]),
    ('{a,"b c","d,e","q\\"uote","back\\\\slash",NULL,"NULL"}', "text",
     ["a", "b c", "d,e", 'q"uote', "back\\slash", None, "NULL"]),
    ("{{1,2},{3,4}}", "int8", [[1, 2], [3, 4]]),
    ('{"{\\"a\\": 1}","[2]"}', "jsonb", [{"a": 1}, [2]]),
    ("[0:1]={7,8}", "int4", [7, 8]),
    ("{6f1c2a52-0000-4000-8000-000000000001}", "uuid",
     ["6f1c2a52-0000-4000-8000-000000000001"]),
    # Numbers JSON can carry, not Decimal; an element Python's int() cannot take stays text.
    ("{NaN,Infinity,-0,123456789012345678901234567890}", "numeric",
     [float("nan"), float("inf"), 0, 123456789012345678901234567890]),
    ("{" + "9" * 5000 + "}", "numeric", ["9" * 5000]),
    # Everything else is the text PostgreSQL wrote, whatever psycopg could make of it.
    ('{"2026-01-02 03:04:05.123456+00",infinity}', "timestamptz",
     ["2026-01-02 03:04:05.123456+00", "infinity"]),
    ('{"[1,5)",empty}', "int4range", ["[1,5)", "empty"]),
    ('{happy,"so so"}', "mood", ["happy", "so so"]),  # an enum: not a type psycopg knows
    # Braces inside quoted elements are text, also in more dimensions.
    ('{{"a{","b}"},{c,NULL}}', "text", [["a{", "b}"], ["c", None]]),
    # Each type's own delimiter: box elements are separated by `;`.
    ("{(1,1),(0,0);(3,3),(2,2)}", "box", ["(1,1),(0,0)", "(3,3),(2,2)"]),
])
def test_array_literals_become_typed_lists(text: str, element: str, expected: Any) -> None:
    # Through JSON, as a client gets them: 10 stays 10 (not 10.0), NaN compares equal.
    assert json.dumps(parse_array(text, element)) == json.dumps(expected)


@pytest.mark.parametrize("text", ["{1,2", "1,2}", "{1,2}x", '{"open}', "{{1,2}", "{1,2}}",
                                  '{{"}"}', "", "[0:1]"])
def test_a_malformed_literal_is_refused(text: str) -> None:
    with pytest.raises(ArrayLiteralError):
        parse_array(text, "int4")


def test_only_array_type_names_have_an_element_type() -> None:
    assert element_type("_int4") == "int4"
    assert element_type("_text") == "text"
    assert element_type("int4") is None
    assert element_type("_") is None
