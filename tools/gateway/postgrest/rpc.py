"""`/rest/v1/rpc/<fn>`: call a function of `public` with named arguments, as PostgREST does.

The function is found by name and by the names of the arguments sent (every required
argument sent, nothing unknown), like PostgREST's schema cache; the values travel as one
JSON parameter and are converted by `json_to_record` to the declared argument types, so
PostgreSQL itself parses them (a bad uuid is its 22P02, a 400). GET calls and calls of
STABLE or IMMUTABLE functions run in a READ ONLY transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from psycopg import sql

from tools.gateway.errors import PostgrestError, bad_request
from tools.gateway.limits import InputError, loads_json, read_body
from tools.gateway.postgrest.http import (
    OBJECT_MEDIA_TYPE,
    caller_of,
    check_profile,
    json_body_response,
    negotiate,
)
from tools.gateway.postgrest.query import CREDENTIALS
from tools.gateway.session import EXPOSED_SCHEMA, Conn, request_transaction
from tools.gateway.shared import gateway_of

_FUNCTIONS_SQL = """
select p.oid::bigint,
       p.provolatile::text,
       p.proretset,
       p.prorettype = 'pg_catalog.void'::pg_catalog.regtype,
       p.pronargdefaults::int,
       coalesce(array(
         select coalesce(arg.name, '')
           from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                       p.proargnames, p.proargmodes)
                with ordinality as arg(type_oid, name, mode, position)
          where arg.type_oid is not null and coalesce(arg.mode, 'i') in ('i', 'b', 'v')
          order by arg.position), '{}'),
       coalesce(array(
         select pg_catalog.format_type(arg.type_oid, null)
           from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                       p.proargnames, p.proargmodes)
                with ordinality as arg(type_oid, name, mode, position)
          where arg.type_oid is not null and coalesce(arg.mode, 'i') in ('i', 'b', 'v')
          order by arg.position), '{}'),
       (select arg.name
          from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                      p.proargnames, p.proargmodes) as arg(type_oid, name, mode)
         where arg.mode = 'v')
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
 where n.nspname = %s and p.proname = %s and p.prokind = 'f'
"""


@dataclass(frozen=True)
class Function:
    """One overload of a function in the exposed schema, as the catalog describes it."""

    name: str
    volatility: str  # i, s or v
    returns_set: bool
    returns_void: bool
    argument_names: tuple[str, ...]
    argument_types: tuple[str, ...]
    defaults: int
    variadic: str | None = None  # the VARIADIC argument's name, if any

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self.argument_names[: len(self.argument_names) - self.defaults])

    @property
    def read_only(self) -> bool:
        return self.volatility in {"i", "s"}

    def accepts(self, names: frozenset[str]) -> bool:
        if "" in self.argument_names:  # unnamed arguments cannot be passed by name
            return False
        return self.required <= names <= frozenset(self.argument_names)


def choose(name: str, overloads: list[Function], sent: frozenset[str]) -> Function:
    """The one overload the sent argument names fit, or PostgREST's 404/300 error."""
    fitting = [f for f in overloads if f.accepts(sent)]
    signature = f"{EXPOSED_SCHEMA}.{name}({', '.join(sorted(sent))})"
    if not fitting:
        searched = ", ".join(sorted(sent)) if sent else "no parameters"
        hint = None
        if overloads:
            known = "; ".join(
                f"{name}({', '.join(f.argument_names)})" for f in overloads)
            hint = f"The function exists with these parameters: {known}"
        raise PostgrestError(
            404, "PGRST202",
            f"Could not find the function {signature} in the schema cache",
            details=f"Searched for the function {EXPOSED_SCHEMA}.{name} with parameters "
                    f"{searched}, but no matches were found in the schema cache.",
            hint=hint,
        )
    if len(fitting) > 1:
        raise PostgrestError(
            300, "PGRST203",
            "Could not choose the best candidate function between: "
            + ", ".join(f"{EXPOSED_SCHEMA}.{name}({', '.join(f.argument_names)})"
                        for f in fitting),
            hint="Try renaming the parameters or the function itself in the database so "
                 "function overloading can be resolved",
        )
    return fitting[0]


async def overloads_of(conn: Conn, name: str) -> list[Function]:
    cursor = await conn.execute(_FUNCTIONS_SQL, (EXPOSED_SCHEMA, name))
    return [
        Function(name, str(vol), bool(retset), bool(void), tuple(names), tuple(types),
                 int(defaults), variadic)
        for _oid, vol, retset, void, defaults, names, types, variadic
        in await cursor.fetchall()
    ]


def call_sql(function: Function, sent: list[str]) -> sql.Composed:
    """SELECT of the call giving (JSON text, row count, first row's JSON text); the
    arguments come from one JSON object parameter through json_to_record.

    Names are quoted identifiers; argument types come from the catalog (format_type),
    never from the request.
    """
    target = sql.Identifier(EXPOSED_SCHEMA, function.name)
    sent = sorted(sent, key=lambda a: a == function.variadic)  # VARIADIC must come last
    types = dict(zip(function.argument_names, function.argument_types, strict=True))
    call = sql.SQL("{}({})").format(target, sql.SQL(", ").join(
        sql.SQL("{}{} => _args.{}").format(
            sql.SQL("variadic " if a == function.variadic else ""), sql.Identifier(a),
            sql.Identifier(a))
        for a in sent
    ))
    args: sql.Composable = sql.SQL("")
    if sent:
        record = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(a), sql.SQL(types[a])) for a in sent)
        args = sql.SQL("pg_catalog.json_to_record(%s::json) as _args({})").format(record)
    if function.returns_set:
        # In FROM, a scalar result is the column `_result`, a composite one the whole row.
        source = (sql.SQL("{}, lateral {} _result").format(args, call) if sent
                  else sql.SQL("{} _result").format(call))
        return sql.SQL(
            "select coalesce(pg_catalog.json_agg(_result), '[]')::text, pg_catalog.count(*),"
            " (pg_catalog.json_agg(_result) -> 0)::text from {}"
        ).format(source)
    # void has no JSON; `is null` still evaluates the call (and keeps one column of text).
    value = (sql.SQL("(case when ({}) is null then null end)::text").format(call)
             if function.returns_void else sql.SQL("pg_catalog.to_json({})::text").format(call))
    from_args = sql.SQL(" from {}").format(args) if sent else sql.SQL("")
    return sql.SQL("select {}, 1, null::text{}").format(value, from_args)


_JSON_TYPES = frozenset({"json", "jsonb"})
_RESERVED = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict"})


async def _body_arguments(request: web.Request) -> tuple[dict[str, Any], str]:
    """The named arguments of a POST (a JSON object) and the body text they came from."""
    content_type = request.headers.get("Content-Type", "application/json")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in {"application/json", "text/plain", ""} and \
            not media_type.endswith("+json"):
        raise PostgrestError(415, "PGRST107",
                             f"The request's Content-Type {media_type!r} is not supported",
                             hint="Send the arguments as a JSON object (application/json).")
    try:
        raw = await read_body(request)
    except InputError as exc:
        raise PostgrestError(exc.status, "PGRST102", str(exc)) from None
    try:
        text = raw.decode("utf-8").strip()
        parsed = loads_json(text) if text else {}
    except ValueError as exc:  # InputError, UnicodeDecodeError
        raise bad_request("Empty or invalid json", code="PGRST102",
                          details=str(exc)[:200]) from None
    if not isinstance(parsed, dict):
        raise bad_request(
            "The local gateway takes the arguments as one JSON object of named arguments",
            code="PGRST102",
            details=f"got a JSON {type(parsed).__name__}",
        )
    return parsed, text or "{}"


def _query_arguments(request: web.Request) -> dict[str, str]:
    arguments: dict[str, str] = {}
    for key, value in request.query.items():
        if key in CREDENTIALS:
            continue
        if key in _RESERVED:
            raise bad_request(f"{key}= on a function call is not supported by the local "
                              "gateway")
        if key in arguments:
            raise bad_request(f"the argument {key!r} is given more than once")
        arguments[key] = value
    return arguments


def _query_json(function: Function, arguments: dict[str, str]) -> str:
    """GET arguments as the JSON object json_to_record reads: text, except that json and
    jsonb arguments are parsed, as PostgreSQL would parse them from text."""
    types = dict(zip(function.argument_names, function.argument_types, strict=True))
    converted: dict[str, Any] = {}
    for name, value in arguments.items():
        if types[name] in _JSON_TYPES:
            try:
                converted[name] = loads_json(value)
            except InputError as exc:
                raise PostgrestError(
                    400, "22P02", f"invalid input syntax for type {types[name]}",
                    details=f"The value of {name!r} is not JSON the gateway takes: "
                            f"{str(exc)[:200]}") from None
        else:
            converted[name] = value
    return json.dumps(converted)


async def call_function(request: web.Request) -> web.StreamResponse:
    name = request.match_info["function"]
    check_profile(request)
    representation = negotiate(request.headers.get("Accept"))
    caller = caller_of(request)
    posted = request.method == "POST"
    if posted:
        arguments, body_text = await _body_arguments(request)
    else:
        query_arguments = _query_arguments(request)
        arguments = dict(query_arguments)
    sent = frozenset(arguments)
    gateway = gateway_of(request)
    async with request_transaction(
        gateway.pool, caller, method=request.method, path=f"/rpc/{name}",
        headers=request.headers, read_only=not posted,
    ) as conn:
        function = choose(name, await overloads_of(conn, name), sent)
        if posted and function.read_only:
            # Allowed mid-transaction (only read-write must come first), as no write ran.
            await conn.execute("set transaction read only")
        ordered = sorted(sent)
        statement = call_sql(function, ordered)
        payload = body_text if posted else _query_json(function, query_arguments)
        cursor = await conn.execute(statement, [payload] if ordered else [])
        found = await cursor.fetchone()
        assert found is not None
        body, returned, first = found[0], int(found[1]), found[2]
    head = request.method == "HEAD"
    if function.returns_void:
        return json_body_response(None, status=204)
    if function.returns_set and representation.single:
        if returned != 1:
            raise PostgrestError(
                406, "PGRST116", "Cannot coerce the result to a single JSON object",
                details=f"The result contains {returned} rows",
            )
        return json_body_response(str(first), content_type=f"{OBJECT_MEDIA_TYPE}; "
                                  "charset=utf-8", head=head)
    return json_body_response("null" if body is None else str(body), head=head)


async def refuse_method(request: web.Request) -> web.StreamResponse:
    raise PostgrestError(405, "PGRST101",
                         f"Cannot use the {request.method} method on RPC",
                         headers={"Allow": "GET, HEAD, POST, OPTIONS"})
