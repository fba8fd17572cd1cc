"""`/rest/v1/<table>`: reads of tables and views in `public`, as PostgREST answers them.

Reads only: clients write through the ingress (`rpc/submit_command`), so POST, PATCH, PUT
and DELETE on a table are refused with 405. Each request is one transaction as the caller
(see tools/gateway/session.py), so RLS decides what a caller sees, exactly as on hosted
Supabase.
"""

from __future__ import annotations

from aiohttp import web
from psycopg import sql

from tools.gateway.errors import PostgrestError, bad_request
from tools.gateway.postgrest.http import (
    OBJECT_MEDIA_TYPE,
    Representation,
    caller_of,
    check_profile,
    json_body_response,
    negotiate,
)
from tools.gateway.postgrest.query import COMPARISONS, Filter, ReadQuery, parse_read_query
from tools.gateway.session import EXPOSED_SCHEMA, Conn, request_transaction
from tools.gateway.shared import gateway_of

_COLUMNS_SQL = """
select a.attname, pg_catalog.format_type(a.atttypid, null)
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
 where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'v', 'm', 'f', 'p')
 order by a.attnum
"""


async def table_columns(conn: Conn, table: str) -> dict[str, str]:
    """Column name -> type (without modifiers) of a table or view in the exposed schema,
    from the catalog (readable by every role, as PostgREST's schema cache is)."""
    cursor = await conn.execute(_COLUMNS_SQL, (EXPOSED_SCHEMA, table))
    columns = {str(name): str(type_name) for name, type_name in await cursor.fetchall()}
    if not columns:
        raise PostgrestError(
            404, "PGRST205", f"Could not find the table '{EXPOSED_SCHEMA}.{table}' in the "
            "schema cache",
            hint="The local gateway reads tables and views of the public schema.",
        )
    return columns


def _condition(f: Filter, column_type: str, params: list[object]) -> sql.Composable:
    column = sql.Identifier(f.column)
    # The type name comes from the catalog (format_type), never from the request.
    typed = sql.SQL("%s::{}").format(sql.SQL(column_type))
    if f.operator in COMPARISONS:
        params.append(f.value)
        return sql.SQL("{} {} {}").format(column, sql.SQL(COMPARISONS[f.operator]), typed)
    if f.operator == "in":
        if not f.value:
            return sql.SQL("false")
        params.extend(f.value)
        return sql.SQL("{} in ({})").format(column, sql.SQL(", ").join([typed] * len(f.value)))
    keyword = {"null": "null", "true": "true", "false": "false", "unknown": "unknown"}[
        str(f.value)
    ]
    return sql.SQL("{} is {}").format(column, sql.SQL(keyword))


def build_read(
    table: str, columns: dict[str, str], query: ReadQuery, representation: Representation
) -> tuple[sql.Composed, sql.Composed, list[object], list[object]]:
    """The page query (JSON text of the rows, their number, the first row) and the exact
    count query, with their parameters. Every name is checked against the real columns."""
    unknown = sorted(query.column_names() - columns.keys())
    if unknown:
        raise PostgrestError(400, "42703",
                             f"column {table}.{unknown[0]} does not exist",
                             hint=None, details=None)
    relation = sql.Identifier(EXPOSED_SCHEMA, table)
    selected = (sql.SQL("*") if query.columns is None
                else sql.SQL(", ").join(sql.Identifier(c) for c in query.columns))
    params: list[object] = []
    conditions = [_condition(f, columns[f.column], params) for f in query.filters]
    where: sql.Composable = sql.SQL("")
    if conditions:
        where = sql.SQL(" where ") + sql.SQL(" and ").join(conditions)
    count_params = list(params)
    order: sql.Composable = sql.SQL("")
    if query.order:
        terms = []
        for term in query.order:
            piece = sql.SQL("{} {}").format(sql.Identifier(term.column),
                                           sql.SQL("desc" if term.descending else "asc"))
            if term.nulls:
                piece = sql.SQL("{} nulls {}").format(piece, sql.SQL(term.nulls))
            terms.append(piece)
        order = sql.SQL(" order by ") + sql.SQL(", ").join(terms)
    page: sql.Composable = sql.SQL("")
    if query.limit is not None:
        page += sql.SQL(" limit %s")
        params.append(query.limit)
    if query.offset is not None:
        page += sql.SQL(" offset %s")
        params.append(query.offset)
    row = (sql.SQL("pg_catalog.json_strip_nulls(pg_catalog.row_to_json(_row))")
           if representation.strip_nulls else sql.SQL("_row"))
    rows_query = sql.SQL(
        "select coalesce(pg_catalog.json_agg({row}), '[]')::text, pg_catalog.count(*),"
        " (pg_catalog.json_agg({row}) -> 0)::text"
        " from (select {selected} from {relation}{where}{order}{page}) _row"
    ).format(row=row, selected=selected, relation=relation, where=where, order=order,
             page=page)
    count_query = sql.SQL("select pg_catalog.count(*) from {relation}{where}").format(
        relation=relation, where=where)
    return rows_query, count_query, params, count_params


def content_range(offset: int, returned: int, total: int | None) -> str:
    total_text = "*" if total is None else str(total)
    if returned == 0:
        return f"*/{total_text}"
    return f"{offset}-{offset + returned - 1}/{total_text}"


def wants_exact_count(request: web.Request) -> bool:
    prefer = ",".join(request.headers.getall("Prefer", []))
    return any(p.strip().lower() == "count=exact" for p in prefer.split(","))


async def read_table(request: web.Request) -> web.StreamResponse:
    table = request.match_info["table"]
    check_profile(request)
    representation = negotiate(request.headers.get("Accept"))
    caller = caller_of(request)
    query = parse_read_query(request.query.items())
    exact = wants_exact_count(request)
    if any(p.strip().lower() in {"count=planned", "count=estimated"}
           for p in ",".join(request.headers.getall("Prefer", [])).split(",")):
        raise bad_request("only Prefer: count=exact is supported by the local gateway")
    gateway = gateway_of(request)
    async with request_transaction(
        gateway.pool, caller, method=request.method, path=f"/{table}",
        headers=request.headers, read_only=True,
    ) as conn:
        columns = await table_columns(conn, table)
        rows_query, count_query, params, count_params = build_read(
            table, columns, query, representation)
        cursor = await conn.execute(rows_query, params)
        found = await cursor.fetchone()
        assert found is not None
        body, returned, first = str(found[0]), int(found[1]), found[2]
        total: int | None = None
        if exact:
            cursor = await conn.execute(count_query, count_params)
            counted = await cursor.fetchone()
            assert counted is not None
            total = int(counted[0])
    head = request.method == "HEAD"
    offset = query.offset or 0
    headers = {"Content-Range": content_range(offset, returned, total)}
    if representation.single:
        if returned != 1:
            raise PostgrestError(
                406, "PGRST116", "Cannot coerce the result to a single JSON object",
                details=f"The result contains {returned} rows",
            )
        return json_body_response(
            str(first), content_type=f"{OBJECT_MEDIA_TYPE}; charset=utf-8",
            headers=headers, head=head)
    status = 206 if total is not None and returned < total else 200
    return json_body_response(body, status=status, headers=headers, head=head)


async def refuse_table_write(request: web.Request) -> web.StreamResponse:
    table = request.match_info["table"]
    raise PostgrestError(
        405, "PGRST117",
        f"{request.method} on /rest/v1/{table} is not supported by the local gateway: "
        "tables are read models, written only by projections",
        hint="Send a command with rpc('submit_command', ...) instead.",
        headers={"Allow": "GET, HEAD, OPTIONS"},
    )
