"""Array columns in Postgres Changes: wal2json's array literals become JSON arrays."""

from __future__ import annotations

from typing import Any

import pytest

from tools.gateway.realtime_arrays import ArrayLiteralError, element_type, parse_array


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
])
def test_array_literals_become_typed_lists(text: str, element: str, expected: Any) -> None:
    assert parse_array(text, element) == expected


@pytest.mark.parametrize("text", ["{1,2", "1,2}", "{1,2}x", '{"open}', "{{1,2}"])
def test_a_malformed_literal_is_refused(text: str) -> None:
    with pytest.raises(ArrayLiteralError):
        parse_array(text, "int4")


def test_only_array_type_names_have_an_element_type() -> None:
    assert element_type("_int4") == "int4"
    assert element_type("_text") == "text"
    assert element_type("int4") is None
    assert element_type("_") is None
