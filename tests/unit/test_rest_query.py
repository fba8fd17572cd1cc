"""The gateway's reading of PostgREST's query syntax (select, filters, order, limit, offset),
what it refuses and how, the SQL it builds from a parsed read, and PostgREST's error
statuses and media types."""

from __future__ import annotations

import pytest

from tools.gateway.errors import PostgrestError, status_for_sqlstate
from tools.gateway.postgrest.http import Representation, negotiate
from tools.gateway.postgrest.query import Filter, OrderTerm, ReadQuery, parse_read_query
from tools.gateway.postgrest.rpc import Function, call_sql, choose
from tools.gateway.postgrest.tables import build_read, content_range

COLUMNS = {"item_id": "uuid", "sku": "text", "on_hand": "bigint", "name": "text",
           "odd name": "text"}


def parse(*params: tuple[str, str]) -> ReadQuery:
    return parse_read_query(params)


def refusal(*params: tuple[str, str]) -> PostgrestError:
    with pytest.raises(PostgrestError) as refused:
        parse_read_query(params)
    assert refused.value.status == 400
    return refused.value


# -- select -------------------------------------------------------------------------------


def test_no_select_and_star_both_mean_every_column() -> None:
    assert parse().columns is None
    assert parse(("select", "*")).columns is None


def test_select_lists_columns_in_order_and_unquotes_quoted_names() -> None:
    query = parse(("select", 'sku, item_id,"odd name"'))
    assert query.columns == ("sku", "item_id", "odd name")


@pytest.mark.parametrize(
    ("select", "named"),
    [
        ("sku,orders(id)", "embedded resource"),
        ("label:sku", "renaming"),
        ("on_hand::text", "cast"),
        ("payload->>kind", "JSON path"),
        ("...orders(id)", "spread"),
        ("count()", "aggregate"),
        ("orders.id", "embedded resource"),
        ("*,sku", "'*' beside other columns"),
    ],
)
def test_select_features_beyond_column_names_are_refused_by_name(select: str, named: str) -> None:
    error = refusal(("select", select))
    assert named in error.message
    assert error.code == "PGRST100"


# -- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("operator", ["eq", "neq", "gt", "gte", "lt", "lte"])
def test_comparisons_keep_the_value_verbatim_including_dots(operator: str) -> None:
    query = parse(("sku", f"{operator}.A.1.b"))
    assert query.filters == (Filter("sku", operator, "A.1.b"),)


def test_in_lists_split_on_commas_outside_quotes() -> None:
    query = parse(("sku", 'in.(a,"b,c","say \\"hi\\"",)'))
    assert query.filters == (Filter("sku", "in", ("a", "b,c", 'say "hi"', "")),)
    assert parse(("sku", "in.()")).filters == (Filter("sku", "in", ()),)


@pytest.mark.parametrize("value", ["null", "true", "false", "unknown", "NULL"])
def test_is_takes_the_four_sql_keywords(value: str) -> None:
    assert parse(("name", f"is.{value}")).filters == (Filter("name", "is", value.lower()),)


def test_several_filters_are_all_kept_also_on_one_column() -> None:
    query = parse(("on_hand", "gt.1"), ("on_hand", "lt.9"), ("sku", "eq.x"))
    assert [f.operator for f in query.filters] == ["gt", "lt", "eq"]


def test_negation_is_refused_naming_not() -> None:
    assert "'not.'" in refusal(("sku", "not.eq.A")).message


@pytest.mark.parametrize("operator", ["like", "ilike", "cs", "fts", "eq(any)", "isdistinct"])
def test_known_operators_the_gateway_does_not_serve_are_refused_by_name(operator: str) -> None:
    error = refusal(("sku", f"{operator}.x"))
    assert repr(operator) in error.message
    assert "not supported by the local gateway" in error.message


def test_unknown_operators_and_malformed_filters_are_refused() -> None:
    assert "unknown operator 'bogus'" in refusal(("sku", "bogus.x")).message
    assert "failed to parse filter" in refusal(("sku", "A")).message
    assert "is. takes" in refusal(("name", "is.maybe")).message
    assert "parenthesised" in refusal(("sku", "in.a,b")).message


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("or", "(sku.eq.a,sku.eq.b)", "logical operator or="),
        ("and", "(sku.eq.a)", "logical operator and="),
        ("orders.order", "id.desc", "embedded resource"),
        ("on_conflict", "sku", "on_conflict="),
        ("orders.id", "eq.1", "embedded resource"),
        ("payload->kind", "eq.x", "JSON path"),
    ],
)
def test_parameters_beyond_plain_filters_are_refused_by_name(
    key: str, value: str, named: str
) -> None:
    assert named in refusal((key, value)).message


# -- order, limit, offset -----------------------------------------------------------------


def test_order_terms_with_direction_and_nulls() -> None:
    query = parse(("order", 'sku.desc.nullslast,item_id,"odd name".asc.nullsfirst,name.nullsfirst'))
    assert query.order == (
        OrderTerm("sku", True, "last"),
        OrderTerm("item_id", False, None),
        OrderTerm("odd name", False, "first"),
        OrderTerm("name", False, "first"),
    )


@pytest.mark.parametrize("order", ["sku.sideways", "sku.nullsfirst.desc", "sku.asc.desc", ""])
def test_malformed_order_terms_are_refused(order: str) -> None:
    refusal(("order", order))


def test_limit_and_offset_must_be_non_negative_integers() -> None:
    assert (parse(("limit", "0"), ("offset", "20")).limit, parse(("offset", "20")).offset) == (
        0, 20)
    for key, value in [("limit", "-1"), ("limit", "ten"), ("offset", "1.5")]:
        refusal((key, value))
    assert "more than once" in refusal(("limit", "1"), ("limit", "2")).message


# -- SQL ----------------------------------------------------------------------------------


def test_a_read_binds_every_value_and_casts_it_to_the_column_type() -> None:
    query = parse(("select", "item_id,sku"), ("sku", "in.(a,b)"), ("on_hand", "gte.3"),
                  ("name", "is.null"), ("order", "sku.desc.nullsfirst"), ("limit", "5"),
                  ("offset", "2"))
    rows, count, params, count_params = build_read("stock_levels", COLUMNS, query,
                                                   Representation())
    text = rows.as_string(None)
    assert 'from "public"."stock_levels"' in text
    assert '"sku" in (%s::text, %s::text) and "on_hand" >= %s::bigint and "name" is null' in text
    assert 'order by "sku" desc nulls first limit %s offset %s' in text
    assert params == ["a", "b", "3", 5, 2]
    assert count_params == ["a", "b", "3"]
    assert "limit" not in count.as_string(None)


def test_a_value_cannot_escape_its_parameter() -> None:
    query = parse(("sku", "eq.x'; drop table stock_levels; --"))
    rows, _, params, _ = build_read("stock_levels", COLUMNS, query, Representation())
    assert "drop table" not in rows.as_string(None)
    assert params == ["x'; drop table stock_levels; --"]


def test_an_empty_in_list_matches_nothing() -> None:
    rows, _, params, _ = build_read("stock_levels", COLUMNS, parse(("sku", "in.()")),
                                    Representation())
    assert "where false" in rows.as_string(None)
    assert params == []


def test_names_not_among_the_table_columns_are_postgres_undefined_column() -> None:
    with pytest.raises(PostgrestError) as refused:
        build_read("stock_levels", COLUMNS, parse(("select", "sku,secret")), Representation())
    assert (refused.value.status, refused.value.code) == (400, "42703")
    assert "stock_levels.secret" in refused.value.message


def test_stripping_nulls_wraps_each_row() -> None:
    rows, *_ = build_read("stock_levels", COLUMNS, parse(), Representation(strip_nulls=True))
    assert "json_strip_nulls" in rows.as_string(None)


def test_content_range_as_postgrest_writes_it() -> None:
    assert content_range(0, 3, None) == "0-2/*"
    assert content_range(10, 5, 42) == "10-14/42"
    assert content_range(0, 0, 0) == "*/0"
    assert content_range(5, 0, None) == "*/*"


# -- rpc ----------------------------------------------------------------------------------


SUBMIT = Function("submit_command", "v", False, False,
                  ("command_type", "payload", "command_id", "correlation_id", "traceparent"),
                  ("text", "jsonb", "uuid", "uuid", "text"), 3)


def test_an_overload_is_chosen_by_the_names_sent() -> None:
    assert choose("submit_command", [SUBMIT], frozenset({"command_type", "payload"})) is SUBMIT
    assert choose("submit_command", [SUBMIT],
                  frozenset({"command_type", "payload", "traceparent"})) is SUBMIT


@pytest.mark.parametrize("sent", [{"command_type"}, {"command_type", "payload", "tenant_id"}])
def test_missing_or_unknown_arguments_find_no_function_as_in_postgrest(sent: set[str]) -> None:
    with pytest.raises(PostgrestError) as refused:
        choose("submit_command", [SUBMIT], frozenset(sent))
    assert (refused.value.status, refused.value.code) == (404, "PGRST202")
    assert "public.submit_command(" in refused.value.message
    assert refused.value.hint is not None
    assert "command_type, payload" in refused.value.hint


def test_an_unknown_function_is_named_in_the_404() -> None:
    with pytest.raises(PostgrestError) as refused:
        choose("no_such_fn", [], frozenset())
    assert refused.value.code == "PGRST202"
    assert "public.no_such_fn()" in refused.value.message


def test_a_call_passes_named_arguments_through_one_json_parameter() -> None:
    text = call_sql(SUBMIT, ["command_type", "payload"]).as_string(None)
    assert ('"public"."submit_command"("command_type" => _args."command_type", '
            '"payload" => _args."payload")') in text
    assert 'json_to_record(%s::json) as _args("command_type" text, "payload" jsonb)' in text


def test_set_returning_functions_are_aggregated_into_an_array() -> None:
    rows = Function("items", "s", True, False, (), (), 0)
    assert "json_agg(_result)" in call_sql(rows, []).as_string(None)


# -- errors and media types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "anonymous", "status"),
    [
        ("PT401", False, 401), ("PT413", False, 413), ("PT409", True, 409),
        ("42501", True, 401), ("42501", False, 403),
        ("23505", False, 409), ("23503", False, 409), ("23502", False, 400),
        ("P0001", False, 400), ("22P02", False, 400), ("42883", False, 404),
        ("42P01", False, 404), ("25006", False, 405), ("08006", False, 503),
        ("40001", False, 500), ("XX000", False, 500), ("P0002", False, 500),
        ("42703", False, 400), ("PTabc", False, 500), (None, False, 500),
    ],
)
def test_database_errors_get_postgrests_status(
    sqlstate: str | None, anonymous: bool, status: int
) -> None:
    assert status_for_sqlstate(sqlstate, anonymous=anonymous) == status


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Representation()),
        ("application/json", Representation()),
        ("*/*", Representation()),
        ("application/vnd.pgrst.object+json", Representation(single=True)),
        ("application/vnd.pgrst.object+json;nulls=stripped", Representation(True, True)),
        ("application/vnd.pgrst.array+json;nulls=stripped", Representation(False, True)),
        ("text/html, application/json", Representation()),
    ],
)
def test_accept_chooses_array_or_single_object(
    accept: str | None, expected: Representation
) -> None:
    assert negotiate(accept) == expected


def test_an_unavailable_media_type_is_406() -> None:
    with pytest.raises(PostgrestError) as refused:
        negotiate("text/csv")
    assert (refused.value.status, refused.value.code) == (406, "PGRST107")
