"""The migration runner's statement splitter: semicolons hide in many places."""

from __future__ import annotations

import pytest

from tools.sql_split import SqlSplitError, split_sql


def texts(script: str) -> list[str]:
    return [s.text for s in split_sql(script)]


def test_splits_on_top_level_semicolons() -> None:
    assert texts("select 1; select 2;\nselect 3") == ["select 1", "select 2", "select 3"]


def test_semicolons_inside_strings_identifiers_and_comments_do_not_split() -> None:
    script = (
        "select 'a;b', \"we;ird\" from t; -- trailing; comment\n"
        "/* block; /* nested; */ still; */ select E'it\\'s;' ;"
    )
    assert texts(script) == [
        "select 'a;b', \"we;ird\" from t",
        "select E'it\\'s;'",
    ]


def test_dollar_quoted_bodies_stay_whole() -> None:
    script = (
        "create function f() returns int language plpgsql as $$ begin return 1; end $$;\n"
        "do $body$ begin perform 1; perform $$x;$$; end $body$;"
    )
    statements = texts(script)
    assert len(statements) == 2
    assert statements[0].endswith("end $$")
    assert statements[1].startswith("do $body$")


def test_doubled_quotes_and_positional_parameters_are_not_quotes() -> None:
    assert texts("select 'it''s; fine', $1; select 2") == ["select 'it''s; fine', $1", "select 2"]


def test_comment_only_chunks_are_dropped_and_lines_are_reported() -> None:
    statements = split_sql("-- header\n\nselect 1;\n-- only a comment;\n\nselect\n 2;")
    assert [s.line for s in statements] == [3, 6]
    assert statements[1].text == "select\n 2"


@pytest.mark.parametrize("script", ["select 'open", "select $$ open", "/* open", 'select "x'])
def test_unterminated_quotes_and_comments_are_errors(script: str) -> None:
    with pytest.raises(SqlSplitError, match="unterminated"):
        split_sql(script)
