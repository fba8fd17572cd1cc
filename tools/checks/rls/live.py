"""The model of a live database, read from its catalogs (pg_class, pg_policy, pg_proc) and
its privilege functions, so membership and PUBLIC grants count as PostgreSQL counts them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools.checks.rls.model import (
    CLIENT_ROLES,
    COLUMN_PRIVILEGES,
    DEFAULT_SCHEMAS,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    Function,
    Model,
    Policy,
    Relation,
)
from tools.checks.rls.report import WARNING, Finding

_LIVE_RELATIONS = """
select n.nspname, c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
  coalesce(c.reloptions, '{}'::text[]),
  array(select a.attname::text from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum),
  c.oid
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
"""

_LIVE_PRIVILEGES = """
select c.oid, r.rolname::text, array(
  select p from unnest(case when c.relkind = 'S' then %(sequence)s::text[]
                            else %(table)s::text[] end) as p
  where case when c.relkind = 'S' then has_sequence_privilege(r.oid, c.oid, p)
             else has_table_privilege(r.oid, c.oid, p)
                  or (p = any(%(column)s::text[]) and has_any_column_privilege(r.oid, c.oid, p))
        end)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
cross join pg_roles r
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
  and r.rolname = any(%(roles)s)
"""

_LIVE_POLICIES = """
select n.nspname, c.relname, p.polname, p.polcmd::text, p.polpermissive,
  array(select case when r = 0 then 'public' else pg_get_userbyid(r)::text end
        from unnest(p.polroles) as r),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid),
  array(select fn.nspname || '.' || f.proname
        from pg_depend d join pg_proc f on f.oid = d.refobjid
        join pg_namespace fn on fn.oid = f.pronamespace
        where d.classid = 'pg_policy'::regclass and d.objid = p.oid
          and d.refclassid = 'pg_proc'::regclass),
  array(select coalesce(f.prosrc, '')
        from pg_depend d join pg_proc f on f.oid = d.refobjid
        where d.classid = 'pg_policy'::regclass and d.objid = p.oid
          and d.refclassid = 'pg_proc'::regclass)
from pg_policy p join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s)
"""

_LIVE_FUNCTIONS = """
select n.nspname, p.proname,
  n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
  p.prorettype in ('trigger'::regtype, 'event_trigger'::regtype),
  case when %(anon)s::boolean then has_function_privilege('anon', p.oid, 'EXECUTE')
       else false end
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any(%(schemas)s)
  and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass
                  and d.objid = p.oid and d.deptype = 'e')
"""

_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "materialized view",
          "S": "sequence"}
_COMMANDS = {"*": "all", "r": "select", "a": "insert", "w": "update", "d": "delete"}
_TRUE = ("true", "on", "1", "yes")


def load_live(conn: Any, schemas: Sequence[str] = DEFAULT_SCHEMAS) -> Model:
    """The model of a live database, read through a psycopg (sync) connection."""
    model = Model(mode="live")
    params: dict[str, Any] = {"schemas": list(schemas)}
    roles = _client_roles(conn, model)
    by_oid = _relations(conn, model, params)
    for oid, role, held in conn.execute(_LIVE_PRIVILEGES, params | {
        "roles": sorted(roles),
        "table": list(TABLE_PRIVILEGES),
        "column": list(COLUMN_PRIVILEGES),
        "sequence": list(SEQUENCE_PRIVILEGES),
    }).fetchall():
        if held and oid in by_oid:
            by_oid[oid].privileges[role] = set(held)
    _policies(conn, model, params)
    for schema, name, signature, is_trigger, anon in conn.execute(
        _LIVE_FUNCTIONS, params | {"anon": "anon" in roles}
    ).fetchall():
        model.functions[signature] = Function(
            schema=schema, name=name, signature=signature, is_trigger=is_trigger,
            executors={"anon"} if anon else set(),
        )
    return model


def _client_roles(conn: Any, model: Model) -> set[str]:
    """The client roles that exist; a note for each one that does not."""
    roles = {row[0] for row in conn.execute(
        "select rolname::text from pg_roles where rolname = any(%s)", (list(CLIENT_ROLES),)
    ).fetchall()}
    for missing in sorted(set(CLIENT_ROLES) - roles):
        model.notes.append(Finding(
            "missing-role", WARNING, f"role {missing}",
            "does not exist in this database (not a Supabase project?); not checked",
        ))
    return roles


def _relations(conn: Any, model: Model, params: dict[str, Any]) -> dict[int, Relation]:
    by_oid: dict[int, Relation] = {}
    for schema, name, kind, enabled, forced, options, columns, oid in conn.execute(
        _LIVE_RELATIONS, params
    ).fetchall():
        invoker = any(
            o.split("=", 1)[0] == "security_invoker" and o.split("=", 1)[1].lower() in _TRUE
            for o in options if "=" in o
        )
        relation = Relation(
            schema=schema, name=name, kind=_KINDS[kind], columns=list(columns),
            rls_enabled=enabled, rls_forced=forced, security_invoker=invoker,
        )
        model.relations[(schema, name)] = relation
        by_oid[oid] = relation
    return by_oid


def _policies(conn: Any, model: Model, params: dict[str, Any]) -> None:
    for (schema, table, name, command, permissive, policy_roles, using, check, calls,
         bodies) in conn.execute(_LIVE_POLICIES, params).fetchall():
        table_of = model.relations.get((schema, table))
        if table_of is None:
            continue
        table_of.policies[name] = Policy(
            name=name, command=_COMMANDS.get(command, "all"),
            roles=frozenset(policy_roles), permissive=permissive,
            using=using, check=check, calls=tuple(calls),
        )
        for called, body in zip(calls, bodies, strict=True):
            model.bodies.setdefault(called, []).append(body)
