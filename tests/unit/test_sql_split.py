"""The migration runner's statement splitter (PostgreSQL's parser, through pglast):
semicolons hide in many places."""

from __future__ import annotations

import pytest

from tools.local.migrations import SqlSplitError, split_sql


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


def test_begin_atomic_bodies_stay_whole() -> None:
    script = (
        "create function f() returns int language sql\n"
        "begin atomic select 1; select 2; end;\nselect 3;"
    )
    statements = split_sql(script)
    assert [s.text for s in statements] == [
        "create function f() returns int language sql\nbegin atomic select 1; select 2; end",
        "select 3",
    ]
    assert [s.line for s in statements] == [1, 3]


def test_doubled_quotes_and_positional_parameters_are_not_quotes() -> None:
    assert texts("select 'it''s; fine', $1; select 2") == ["select 'it''s; fine', $1", "select 2"]


def test_comment_only_chunks_are_dropped_and_lines_are_reported() -> None:
    statements = split_sql("-- header\n\nselect 1;\n-- only a comment;\n\nselect\n 2;")
    assert [s.line for s in statements] == [3, 6]
    assert statements[1].text == "select\n 2"


def test_comments_inside_and_after_a_statement_stay_with_it() -> None:
    statements = split_sql("select 1 /* one */;\n/* lead */ select 2 -- two\n;\n-- end")
    assert [s.text for s in statements] == ["select 1 /* one */", "select 2 -- two"]
    assert [s.line for s in statements] == [1, 2]


def test_non_ascii_text_keeps_offsets_and_lines() -> None:
    statements = split_sql("-- café\nselect 'é;ü' as \"naïve\";\n\nselect '日本';")
    assert [s.text for s in statements] == ["select 'é;ü' as \"naïve\"", "select '日本'"]
    assert [s.line for s in statements] == [2, 4]


def test_a_syntax_error_still_splits_so_the_server_can_name_the_statement() -> None:
    statements = split_sql("create table t (id int);\n\nselect from where;\nselect 3;")
    assert [s.text for s in statements] == [
        "create table t (id int)", "select from where", "select 3",
    ]
    assert [s.line for s in statements] == [1, 3, 4]


def test_an_empty_script_has_no_statements() -> None:
    assert split_sql("") == []
    assert split_sql("  -- nothing\n/* at all */\n;;") == []


@pytest.mark.parametrize("script", ["select 'open", "select $$ open", "/* open", 'select "x'])
def test_unterminated_quotes_and_comments_are_errors(script: str) -> None:
    with pytest.raises(SqlSplitError, match="unterminated"):
        split_sql(script)


def test_an_unterminated_quote_names_its_line_past_non_ascii_text() -> None:
    with pytest.raises(SqlSplitError, match=r"^line 3: unterminated quoted string"):
        split_sql("select 'ééé';\n-- ü\nselect 'open")


def test_an_unbalanced_parenthesis_loses_no_statement() -> None:
    statements = split_sql("create policy p on t using (;\nselect 1;\ngrant x to y")
    assert [s.text for s in statements] == [
        "create policy p on t using (", "select 1", "grant x to y",
    ]
    assert [s.line for s in statements] == [1, 2, 3]
