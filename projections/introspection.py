"""A live database's projection tables as shapes (projections.shapes), read from the system
catalogs, and their drift from the metadata."""


from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from projections import sql
from projections.schema import compare
from projections.shapes import (
    ColumnShape,
    Difference,
    IndexShape,
    PolicyShape,
    TableKey,
    TableShape,
    canonical_sql,
)
from projections.sql import Layout

# -- the live database ---------------------------------------------------------------------

_TABLES = """
select c.oid, n.nspname as schema, c.relname as name,
       c.relrowsecurity as rls_enabled, c.relforcerowsecurity as rls_forced,
       obj_description(c.oid, 'pg_class') as comment,
       exists (select from pg_publication_tables p
               where p.pubname = %(publication)s
                 and p.schemaname = n.nspname and p.tablename = c.relname) as published,
       array(select r.rolname from pg_roles r
             where r.rolname = any(%(roles)s)
               and has_schema_privilege(r.oid, n.oid, 'USAGE'))::text[] as schema_usage
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p')
  and ((n.nspname || '.' || c.relname) = any(%(declared)s)
       or (n.nspname = any(%(schemas)s)
           and obj_description(c.oid, 'pg_class') like %(comment)s))
order by n.nspname, c.relname
"""

_COLUMNS = """
select a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
       not a.attnotnull as nullable, pg_get_expr(d.adbin, d.adrelid) as default
from pg_attribute a
left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = %(oid)s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

_PRIMARY_KEY = """
select con.conname as name,
       array(select a.attname
             from unnest(con.conkey) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
             order by k.ord)::text[] as columns
from pg_constraint con
where con.conrelid = %(oid)s and con.contype = 'p'
"""

_INDEXES = """
select ic.relname as name, i.indisunique as unique,
       i.indexprs is null and i.indpred is null as plain,
       array(select a.attname
             from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
             order by k.ord)::text[] as columns,
       (select con.conname from pg_constraint con
        where con.conindid = i.indexrelid and con.conrelid = i.indrelid) as constraint
from pg_index i join pg_class ic on ic.oid = i.indexrelid
where i.indrelid = %(oid)s and not i.indisprimary
order by ic.relname
"""

_POLICIES = """
select policyname as name, cmd as command, permissive = 'PERMISSIVE' as permissive,
       roles::text[] as roles, qual as using, with_check
from pg_policies
where schemaname = %(schema)s and tablename = %(name)s
order by policyname
"""

_GRANTS = """
select case when acl.grantee = 0 then 'public' else r.rolname end as role,
       acl.privilege_type as privilege
from pg_class c
cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) acl
left join pg_roles r on r.oid = acl.grantee
where c.oid = %(oid)s
"""


def introspect(conn: psycopg.Connection[Any], layouts: Iterable[Layout]) -> dict[TableKey,
                                                                               TableShape]:
    """The shapes of the declared tables that exist, and of every table in the same schemas
    commented as an Intent projection (twins included: `compare` decides what to ignore).
    Other schemas are not searched: a projection's schema may hold tables of other apps."""
    layouts = list(layouts)
    declared = sorted(f"{layout.schema_name}.{t.name}" for layout in layouts
                      for t in layout.tables)
    schemas = sorted({layout.schema_name for layout in layouts})
    shapes: dict[TableKey, TableShape] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_TABLES, {"publication": sql.PUBLICATION, "declared": declared,
                              "schemas": schemas, "roles": list(sql.CLIENT_ROLES),
                              "comment": f"{sql.COMMENT_PREFIX}%"})
        tables = cur.fetchall()
        for row in tables:
            shapes[(row["schema"], row["name"])] = _table_shape(cur, row)
    return shapes


def _table_shape(cur: psycopg.Cursor[dict[str, Any]], row: dict[str, Any]) -> TableShape:
    oid = row["oid"]
    cur.execute(_COLUMNS, {"oid": oid})
    columns = tuple(
        ColumnShape(name=c["name"], type=c["type"], nullable=c["nullable"],
                    default=canonical_sql(c["default"]))
        for c in cur.fetchall()
    )
    cur.execute(_PRIMARY_KEY, {"oid": oid})
    pk = cur.fetchone()
    cur.execute(_INDEXES, {"oid": oid})
    indexes = tuple(
        IndexShape(name=i["name"], columns=tuple(i["columns"]) if i["plain"] else (),
                   unique=i["unique"], plain=i["plain"], constraint=i["constraint"])
        for i in cur.fetchall()
    )
    cur.execute(_POLICIES, {"schema": row["schema"], "name": row["name"]})
    policies = tuple(
        PolicyShape(name=p["name"], command=p["command"], permissive=p["permissive"],
                    roles=tuple(sorted(p["roles"])), using=canonical_sql(p["using"]),
                    with_check=canonical_sql(p["with_check"]))
        for p in cur.fetchall()
    )
    cur.execute(_GRANTS, {"oid": oid})
    grants: dict[str, set[str]] = {role: set() for role in sql.REVOKED_FROM}
    for g in cur.fetchall():
        if g["role"] in grants:
            grants[g["role"]].add(g["privilege"])
    comment = row["comment"] or ""
    projection = (
        comment.removeprefix(sql.COMMENT_PREFIX).strip()
        if comment.startswith(sql.COMMENT_PREFIX)
        else None
    )
    return TableShape(
        schema=row["schema"],
        name=row["name"],
        projection=projection,
        columns=columns,
        primary_key=tuple(pk["columns"]) if pk else (),
        primary_key_name=pk["name"] if pk else None,
        indexes=indexes,
        rls_enabled=row["rls_enabled"],
        rls_forced=row["rls_forced"],
        policies=policies,
        grants={role: frozenset(privileges) for role, privileges in grants.items()},
        published=row["published"],
        schema_usage=frozenset(row["schema_usage"]),
    )


def drift(conn: psycopg.Connection[Any], layouts: Sequence[Layout]) -> list[Difference]:
    """How the live database differs from the metadata (empty when it matches)."""
    return compare(layouts, introspect(conn, layouts), live=True)
