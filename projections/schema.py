"""What projection tables look like, in the metadata and in a live database, and the SQL that
turns one into the other.

Both sides are reduced to the same plain shape (`TableShape`): columns with a canonical type,
nullability and a canonical default; the primary key; indexes by name; RLS flags; policies
by name with a canonical USING expression; table privileges of the client roles; membership
of the Realtime publication. One comparison then serves two purposes:

- the migration generator compares the shape the last generated migration recorded with the
  metadata now (`live=False`): a type change becomes an ALTER (destructive, refused unless
  allowed);
- drift compares a live database with the metadata (`live=True`): there a type change or a
  changed primary key is left to `intent projections rebuild`, because guessing a cast over
  real rows is worse than replaying the events.

Every difference carries the statements that remove it, rendered by `projections.sql`.
Column order is not compared: an added column lands after the guard columns, and nothing
reads projection tables by position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
import sqlglot
from psycopg.rows import dict_row
from sqlglot import exp
from sqlglot.errors import ParseError

from projections import sql
from projections.metadata import Column, Table
from projections.sql import Layout

Severity = Literal["safe", "destructive", "rebuild"]
TableKey = tuple[str, str]  # (schema, table)

# How information_schema / format_type spell the metadata's types.
_CANONICAL_TYPES = {"timestamptz": "timestamp with time zone"}
_NUMERIC_TYPES = {
    exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT,
    exp.DataType.Type.DECIMAL, exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT,
}


# -- shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnShape:
    name: str
    type: str  # as format_type() spells it
    nullable: bool
    default: str | None  # canonical SQL (see canonical_sql)


@dataclass(frozen=True)
class IndexShape:
    name: str
    columns: tuple[str, ...]  # empty for an expression index
    unique: bool
    plain: bool = True  # no expression, no predicate
    constraint: str | None = None  # the constraint it backs, if any

    def describe(self) -> str:
        kind = "unique index" if self.unique else "index"
        cols = ", ".join(self.columns) if self.columns else "expressions"
        extra = "" if self.plain else ", partial or on expressions"
        return f"{kind} {self.name} ({cols}{extra})"


@dataclass(frozen=True)
class PolicyShape:
    name: str
    command: str
    permissive: bool
    roles: tuple[str, ...]
    using: str | None
    with_check: str | None

    def describe(self) -> str:
        kind = "permissive" if self.permissive else "restrictive"
        return (
            f"{kind} {self.command} to {', '.join(self.roles)} using ({self.using})"
            + (f" with check ({self.with_check})" if self.with_check else "")
        )


@dataclass(frozen=True)
class TableShape:
    schema: str
    name: str
    projection: str | None  # from the table's comment (None: no Intent comment)
    columns: tuple[ColumnShape, ...]
    primary_key: tuple[str, ...]
    primary_key_name: str | None
    indexes: tuple[IndexShape, ...]
    rls_enabled: bool
    rls_forced: bool
    policies: tuple[PolicyShape, ...]
    grants: Mapping[str, frozenset[str]]  # client role -> privileges
    published: bool
    schema_usage: frozenset[str]  # client roles that may use the table's schema

    def column(self, name: str) -> ColumnShape | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Difference:
    """One way a table differs from the metadata, and what removes it."""

    projection: str
    schema: str
    table: str
    kind: str
    detail: str
    statements: tuple[str, ...] = ()
    severity: Severity = "safe"

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def as_json(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "table": self.qualified,
            "kind": self.kind,
            "detail": self.detail,
            "severity": self.severity,
            "statements": list(self.statements),
        }


# -- canonical text ------------------------------------------------------------------------


def canonical_type(type_name: str) -> str:
    return _CANONICAL_TYPES.get(type_name, type_name)


def _simplify(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Paren | exp.Alias):
        inner: exp.Expression = node.this
        return inner
    if isinstance(node, exp.Cast):
        inner = node.this
        target = node.args.get("to")
        if (
            isinstance(inner, exp.Literal)
            and inner.is_string
            and isinstance(target, exp.DataType)
            and target.this in _NUMERIC_TYPES
            and re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", inner.this)
        ):
            number = inner.this
            return (
                exp.Neg(this=exp.Literal.number(number[1:]))
                if number.startswith("-")
                else exp.Literal.number(number)
            )
        value: exp.Expression = inner
        return value
    return node


def canonical_sql(text: str | None) -> str | None:
    """Expression text as PostgreSQL stores it and as we render it, brought to one spelling:
    parentheses, aliases and casts (`'placed'::text`) removed; `now()` and
    CURRENT_TIMESTAMP alike."""
    if text is None:
        return None
    try:
        tree = sqlglot.parse_one(text, read=sql.DIALECT)
    except ParseError:
        return " ".join(text.split()).lower()
    previous = None
    rendered = tree.sql(sql.DIALECT)
    while rendered != previous:  # a cast may wrap a parenthesis and the other way round
        previous = rendered
        tree = tree.transform(_simplify)
        rendered = tree.sql(sql.DIALECT)
    return rendered


# -- the shape the metadata asks for --------------------------------------------------------


def expected_column(column: Column) -> ColumnShape:
    return ColumnShape(
        name=column.name,
        type=canonical_type(column.type),
        nullable=column.nullable,
        default=canonical_sql(sql.default_sql(column)),
    )


def expected_policies(readers: Iterable[str]) -> tuple[PolicyShape, ...]:
    using = canonical_sql(sql.tenant_filter_sql())
    return tuple(
        PolicyShape(
            name=sql.policy_name(role),
            command="SELECT",
            permissive=True,
            roles=(role,),
            using=using,
            with_check=None,
        )
        for role in sql.policy_roles(readers)
    )


def expected_grants(readers: Iterable[str]) -> dict[str, frozenset[str]]:
    readers = set(readers)
    return {
        role: frozenset({"SELECT"}) if role in readers else frozenset()
        for role in sql.REVOKED_FROM
    }


def expected_table(layout: Layout, table: Table, physical: str | None = None) -> TableShape:
    name = physical or table.name
    return TableShape(
        schema=layout.schema_name,
        name=name,
        projection=layout.name,
        columns=tuple(expected_column(c) for c in sql.physical_columns(table)),
        primary_key=table.primary_key,
        primary_key_name=sql.primary_key_name(name),
        indexes=tuple(
            IndexShape(name=i.name_on(name), columns=i.columns, unique=i.unique)
            for i in table.indexes
        ),
        rls_enabled=True,
        rls_forced=True,
        policies=expected_policies(layout.readers),
        grants=expected_grants(layout.readers),
        published=layout.realtime,
        schema_usage=frozenset(layout.readers),
    )


# -- comparison ----------------------------------------------------------------------------


@dataclass
class _Differences:
    layout: Layout
    table: str
    found: list[Difference] = field(default_factory=list)

    def add(self, kind: str, detail: str, statements: Sequence[str] = (),
            severity: Severity = "safe") -> None:
        self.found.append(
            Difference(
                projection=self.layout.name,
                schema=self.layout.schema_name,
                table=self.table,
                kind=kind,
                detail=detail,
                statements=tuple(statements),
                severity=severity,
            )
        )


def _rebuild_hint(layout: Layout) -> str:
    return f"run `intent projections rebuild {layout.name}`"


def compare_table(
    layout: Layout, table: Table, actual: TableShape | None, *, live: bool
) -> list[Difference]:
    """How `actual` differs from what the metadata asks for `table`, in a fixed order."""
    schema, name = layout.schema_name, table.name
    out = _Differences(layout, name)
    if actual is None:
        statements = sql.schema_ddl(schema, layout.readers) + sql.table_ddl(layout, table)
        out.add("missing_table", "table missing: created with its indexes, RLS, policies and "
                "grants", statements)
        return out.found
    expected = expected_table(layout, table)
    if actual.projection != layout.name:
        out.add("comment", f"the table's comment does not name projection {layout.name}",
                [sql.comment_table(schema, name, layout.name)])
    _compare_columns(out, layout, table, expected, actual, live=live)
    _compare_primary_key(out, layout, table, actual, live=live)
    _compare_indexes(out, layout, table, expected, actual)
    if not actual.rls_enabled:
        out.add("rls_disabled", "row-level security is not enabled",
                [sql.enable_rls(schema, name)])
    if not actual.rls_forced:
        out.add("rls_not_forced", "row-level security is not forced (the owner skips it)",
                [sql.force_rls(schema, name)])
    _compare_policies(out, layout, expected, actual)
    _compare_grants(out, layout, expected, actual)
    # public is usable by every role (granted by the platform, not by projections).
    unusable = sorted(expected.schema_usage - actual.schema_usage)
    if unusable and schema != "public":
        out.add("schema_usage", f"{', '.join(unusable)} may not use schema {schema}",
                [sql.grant_schema_usage(schema, unusable)])
    if actual.published != expected.published:
        if expected.published:
            out.add("publication", f"not in the {sql.PUBLICATION} publication",
                    [sql.publication_add(schema, name)])
        else:
            out.add("publication", f"in the {sql.PUBLICATION} publication, but not realtime",
                    [sql.publication_drop(schema, name)])
    return out.found


def _compare_columns(
    out: _Differences, layout: Layout, table: Table, expected: TableShape, actual: TableShape,
    *, live: bool,
) -> None:
    schema, name = layout.schema_name, table.name
    declared = {c.name: c for c in sql.physical_columns(table)}
    for want in expected.columns:
        column = declared[want.name]
        have = actual.column(want.name)
        if have is None:
            if not column.nullable and column.default is None:
                missing = (f"column {want.name} ({want.type} not null, no default) is "
                           "missing and existing rows have no value for it")
                advice = (
                    _rebuild_hint(layout) if live else
                    "give it a default or make it nullable (then, to fill it from the "
                    f"events, {_rebuild_hint(layout)})"
                )
                out.add("missing_column", f"{missing}: {advice}", severity="rebuild")
            else:
                out.add("missing_column", f"column {want.name} ({want.type}) is missing",
                        [sql.add_column(schema, name, column, if_not_exists=True)])
            continue
        if have.type != want.type:
            detail = f"column {want.name} is {have.type}, the metadata says {want.type}"
            if live:
                out.add("column_type", f"{detail}; {_rebuild_hint(layout)}", severity="rebuild")
            else:
                out.add("column_type", detail,
                        [sql.alter_column_type(schema, name, want.name, column.type)],
                        severity="destructive")
        if have.nullable and not want.nullable:
            out.add("nullability", f"column {want.name} is nullable, the metadata says not null"
                    " (fails if a row has a null)",
                    [sql.set_not_null(schema, name, want.name)], severity="destructive")
        elif want.nullable and not have.nullable:
            out.add("nullability", f"column {want.name} is not null, the metadata allows null",
                    [sql.drop_not_null(schema, name, want.name)])
        if have.default != want.default:
            out.add(
                "default",
                f"column {want.name} defaults to {have.default or 'nothing'}, the metadata "
                f"says {want.default or 'nothing'}",
                [sql.set_default(schema, name, column)],
            )
    for have in actual.columns:
        if expected.column(have.name) is None:
            out.add("extra_column", f"column {have.name} ({have.type}) is not in the metadata",
                    [sql.drop_column(schema, name, have.name)], severity="destructive")


def _compare_primary_key(
    out: _Differences, layout: Layout, table: Table, actual: TableShape, *, live: bool
) -> None:
    if actual.primary_key == table.primary_key:
        return
    was = ", ".join(actual.primary_key) or "none"
    detail = f"primary key is ({was}), the metadata says ({', '.join(table.primary_key)})"
    if live:
        out.add("primary_key", f"{detail}; {_rebuild_hint(layout)}", severity="rebuild")
        return
    out.add(
        "primary_key",
        detail,
        sql.set_primary_key(layout.schema_name, table.name, table.primary_key,
                            drop_constraint=actual.primary_key_name),
        severity="destructive",
    )


def _compare_indexes(
    out: _Differences, layout: Layout, table: Table, expected: TableShape, actual: TableShape
) -> None:
    schema, name = layout.schema_name, table.name
    declared = {i.name_on(name): i for i in table.indexes}
    have_by_name = {i.name: i for i in actual.indexes}
    for want in expected.indexes:
        have = have_by_name.get(want.name)
        create = sql.create_index(schema, name, declared[want.name], if_not_exists=True)
        if have is None:
            out.add("missing_index", f"{want.describe()} is missing", [create])
        elif (have.columns, have.unique, have.plain) != (want.columns, want.unique, True):
            out.add("index_definition", f"{have.describe()}, the metadata says "
                    f"{want.describe()}", [_drop_index(schema, name, have), create])
    wanted = {i.name for i in expected.indexes}
    for have in actual.indexes:
        if have.name not in wanted:
            out.add("extra_index", f"{have.describe()} is not in the metadata",
                    [_drop_index(schema, name, have)])


def _drop_index(schema: str, table: str, index: IndexShape) -> str:
    if index.constraint is not None:
        return (
            f"ALTER TABLE {sql.qualified(schema, table)} DROP CONSTRAINT "
            f"{sql.name_sql(index.constraint)}"
        )
    return sql.drop_index(schema, index.name)


def _compare_policies(
    out: _Differences, layout: Layout, expected: TableShape, actual: TableShape
) -> None:
    schema, name = layout.schema_name, expected.name
    have_by_name = {p.name: p for p in actual.policies}
    for want in expected.policies:
        have = have_by_name.get(want.name)
        role = want.roles[0]
        if have is None:
            out.add("missing_policy", f"policy {want.name} ({role} reads its tenant) is "
                    "missing", [sql.create_policy(schema, name, role)])
        elif have != want:
            out.add("policy_definition", f"policy {want.name} is {have.describe()}, the "
                    f"metadata says {want.describe()}",
                    [sql.drop_policy(schema, name, want.name),
                     sql.create_policy(schema, name, role)])
    wanted = {p.name for p in expected.policies}
    for have in actual.policies:
        if have.name not in wanted:
            out.add("extra_policy", f"policy {have.name} ({have.describe()}) is not in the "
                    "metadata", [sql.drop_policy(schema, name, have.name)])


def _compare_grants(
    out: _Differences, layout: Layout, expected: TableShape, actual: TableShape
) -> None:
    schema, name = layout.schema_name, expected.name
    for role in sql.REVOKED_FROM:
        want = expected.grants.get(role, frozenset())
        have = actual.grants.get(role, frozenset())
        if want == have:
            continue
        statements = []
        extra, missing = sorted(have - want), sorted(want - have)
        if extra:
            statements.append(sql.revoke(schema, name, extra, [role]))
        if missing:
            statements.append(sql.grant(schema, name, missing, [role]))
        out.add("grants", f"{role} has {_privileges(have)}, the metadata says "
                f"{_privileges(want)}", statements)


def _privileges(privileges: frozenset[str]) -> str:
    return ", ".join(sorted(privileges)) or "no privileges"


def compare(
    layouts: Iterable[Layout], actual: Mapping[TableKey, TableShape], *, live: bool
) -> list[Difference]:
    """Every difference between `actual` (tables by (schema, name)) and the layouts: their
    tables in order, then tables of projections the layouts no longer declare."""
    found: list[Difference] = []
    declared: set[TableKey] = set()
    for layout in sorted(layouts, key=lambda item: item.name):
        for table in layout.tables:
            key = (layout.schema_name, table.name)
            declared.add(key)
            found += compare_table(layout, table, actual.get(key), live=live)
    for key in sorted(set(actual) - declared):
        shape = actual[key]
        if is_twin(shape.name):
            continue
        found.append(
            Difference(
                projection=shape.projection or "?",
                schema=shape.schema,
                table=shape.name,
                kind="extra_table",
                detail=f"table {shape.schema}.{shape.name} (projection "
                f"{shape.projection or '?'}) is not declared by any projection",
                statements=(sql.drop_table(shape.schema, shape.name),),
                severity="destructive",
            )
        )
    return found


def is_twin(name: str) -> bool:
    return name.endswith(sql.TWIN_SUFFIXES)


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


# -- repair --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairPlan:
    statements: tuple[str, ...]  # in order; one transaction
    fixed: tuple[Difference, ...]  # what the statements remove
    rebuild: tuple[Difference, ...]  # needs `intent projections rebuild`
    held_back: tuple[Difference, ...]  # destructive, not allowed

    @property
    def complete(self) -> bool:
        return not self.rebuild and not self.held_back


def repair_plan(differences: Sequence[Difference], *, allow_destructive: bool) -> RepairPlan:
    statements: list[str] = []
    fixed: list[Difference] = []
    rebuild: list[Difference] = []
    held: list[Difference] = []
    for difference in differences:
        if difference.severity == "rebuild" or not difference.statements:
            rebuild.append(difference)
        elif difference.severity == "destructive" and not allow_destructive:
            held.append(difference)
        else:
            fixed.append(difference)
            statements += [s for s in difference.statements if s not in statements]
    return RepairPlan(tuple(statements), tuple(fixed), tuple(rebuild), tuple(held))
