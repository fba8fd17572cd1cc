"""Projection metadata rendered as PostgreSQL statements, built with sqlglot.

Every statement that sqlglot can express (CREATE TABLE / INDEX / SCHEMA, ALTER TABLE ... ADD
/ DROP / ALTER COLUMN, GRANT, REVOKE, DROP, COMMENT) is built as a sqlglot expression and
rendered for the postgres dialect. The few it cannot express (CREATE / DROP POLICY, ALTER
TABLE ... ENABLE / FORCE ROW LEVEL SECURITY, ALTER PUBLICATION) are composed from identifiers
rendered by sqlglot and fixed keywords. Every name is checked here a second time, even though
the metadata validated it already: a name that would need escaping is refused, never quoted
into something else. Reserved words (a column called `order`) are quoted, which is safe.

Statements come back without a trailing semicolon, in a fixed order, so that the same
metadata always renders the same text (the generator and the drift check rely on it).

Decisions the rest of Intent relies on:

- Each projection table is: the declared columns, then `event_txid bigint not null` and
  `event_position bigint not null` (the feed position of the last event applied to the
  row), then the primary key. It carries the comment `intent projection <name>`, which is how
  drift finds tables of projections that the metadata no longer declares.
- Row-level security is enabled and forced. `anon` and `authenticated` readers get one
  SELECT policy each, named `<role>_tenant_read`, limited to the JWT's tenant. `service_role`
  bypasses RLS (it is BYPASSRLS on Supabase), so it gets no policy: a policy would be dead
  text that reads as if it restricted something.
- Grants are explicit: ALL is revoked from public, anon, authenticated and service_role
  (hosted projects grant ALL to the last three on new tables by default), then the readers get
  SELECT. The runtime's role (`intent_worker`, which bypasses RLS) gets SELECT, INSERT,
  UPDATE and DELETE: the worker's inline projections and the runner are the only writers.
- A realtime projection's table is added to the `supabase_realtime` publication.
- A rebuild creates a twin (`physical_name`, e.g. `stock_levels__rebuild`) with the same
  shape, indexes named after the twin; `rename_table` renames a twin and its indexes and
  primary key when it is swapped in, so that the live table's names never depend on its past.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from sqlglot import exp
from sqlglot.errors import ErrorLevel

from projections.metadata import (
    GUARD_COLUMNS,
    Column,
    Index,
    Role,
    SqlFunction,
    Table,
)

DIALECT = "postgres"
PUBLICATION = "supabase_realtime"
# The roles a client can act as; none of them gets anything that is not granted here.
CLIENT_ROLES: tuple[Role, ...] = ("anon", "authenticated", "service_role")
REVOKED_FROM = ("public", *CLIENT_ROLES)
# Roles that bypass RLS on Supabase: a SELECT grant is enough, a policy would be dead text.
BYPASSES_RLS = frozenset({"service_role"})
# The runtime's role bypasses RLS and writes every projection table, so each one grants it
# exactly what writing rows takes.
WRITER_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
GUARD_TYPE = "bigint"
COMMENT_PREFIX = "intent projection "
# Tables beside a live one while it is rebuilt or just swapped out; never drift.
TWIN_SUFFIXES = ("__rebuild", "__old")

_SAFE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# PostgreSQL's reserved key words (including those that may only be function or type
# names): such a column name is valid only when quoted.
_RESERVED_WORDS = """
    all analyse analyze and any array as asc asymmetric authorization binary both case cast
    check collate collation column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user
    default deferrable desc distinct do else end except false fetch for foreign freeze from
    full grant group having ilike in initially inner intersect into is isnull join lateral
    leading left like limit localtime localtimestamp natural not notnull null offset on only
    or order outer overlaps placing primary references returning right select session_user
    similar some symmetric system_user table tablesample then to trailing true union unique
    user using variadic verbose when where window with
"""
_RESERVED = frozenset(_RESERVED_WORDS.split())


class Layout(Protocol):
    """What the SQL of a projection depends on. A `Projection` is one; so is the state a
    generated migration recorded, which has no handler to rebuild a Projection with."""

    @property
    def name(self) -> str: ...
    @property
    def schema_name(self) -> str: ...
    @property
    def tables(self) -> Sequence[Table]: ...
    @property
    def readers(self) -> Sequence[str]: ...
    @property
    def realtime(self) -> bool: ...


class UnsafeIdentifierError(ValueError):
    """A name reached the SQL renderer without being a plain lower-case identifier."""


# -- names ---------------------------------------------------------------------------------


def identifier(name: str) -> exp.Identifier:
    """The second line of defence: the metadata validated the name, but this module is also
    called with names from elsewhere (a twin's suffix, an introspected database)."""
    if not isinstance(name, str) or not _SAFE.fullmatch(name):
        raise UnsafeIdentifierError(
            f"refusing to render {name!r} as an SQL identifier: only lower-case letters, "
            "digits and underscores, starting with a letter or underscore, at most 63"
        )
    return exp.to_identifier(name, quoted=name in _RESERVED)


def name_sql(name: str) -> str:
    return identifier(name).sql(DIALECT)


def table_ref(schema: str, name: str) -> exp.Table:
    return exp.Table(this=identifier(name), db=identifier(schema))


def qualified(schema: str, name: str) -> str:
    return table_ref(schema, name).sql(DIALECT)


def render(expression: exp.Expression, *, pretty: bool = False) -> str:
    """Anything sqlglot cannot render faithfully is an error, never a silent approximation."""
    return expression.sql(dialect=DIALECT, pretty=pretty, unsupported_level=ErrorLevel.RAISE)


# -- columns -------------------------------------------------------------------------------


def default_expression(value: SqlFunction | bool | int | float | str) -> exp.Expression:
    """A constant as a literal; one of the known function calls as that call."""
    if isinstance(value, SqlFunction):
        return exp.Anonymous(this=value.value.removesuffix("()"), expressions=[])
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"a column default must be a finite number, not {value!r}")
        return exp.Literal.number(repr(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise TypeError(f"unsupported column default {value!r}")


def default_sql(column: Column) -> str | None:
    return None if column.default is None else render(default_expression(column.default))


def data_type(type_name: str) -> exp.DataType:
    return exp.DataType.build(type_name, dialect=DIALECT)


def type_sql(type_name: str) -> str:
    return render(data_type(type_name))


def column_def(column: Column, *, if_not_exists: bool = False) -> exp.ColumnDef:
    constraints: list[exp.ColumnConstraint] = []
    if column.default is not None:
        constraints.append(
            exp.ColumnConstraint(
                kind=exp.DefaultColumnConstraint(this=default_expression(column.default))
            )
        )
    if not column.nullable:
        constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
    definition = exp.ColumnDef(
        this=identifier(column.name), kind=data_type(column.type), constraints=constraints
    )
    if if_not_exists:
        definition.set("exists", True)
    return definition


def guard_columns() -> tuple[Column, ...]:
    return tuple(Column(name=name, type=GUARD_TYPE, nullable=False) for name in GUARD_COLUMNS)


def physical_columns(table: Table) -> tuple[Column, ...]:
    """The columns as they are in the database, in order: declared, then the guard."""
    return (*table.columns, *guard_columns())


# -- tables --------------------------------------------------------------------------------


def create_table(schema: str, physical: str, table: Table) -> str:
    primary_key = exp.PrimaryKey(expressions=[identifier(c) for c in table.primary_key])
    body: list[exp.Expression] = [column_def(c) for c in physical_columns(table)]
    body.append(primary_key)
    create = exp.Create(
        kind="TABLE", this=exp.Schema(this=table_ref(schema, physical), expressions=body)
    )
    return render(create, pretty=True)


def drop_table(schema: str, physical: str) -> str:
    return render(exp.Drop(kind="TABLE", tables=[table_ref(schema, physical)], exists=True))


def comment_table(schema: str, physical: str, projection: str) -> str:
    identifier(projection)
    return render(
        exp.Comment(
            this=table_ref(schema, physical),
            kind="TABLE",
            expression=exp.Literal.string(f"{COMMENT_PREFIX}{projection}"),
        )
    )


def _alter(schema: str, physical: str, action: exp.Expression) -> str:
    return render(exp.Alter(this=table_ref(schema, physical), kind="TABLE", actions=[action]))


def add_column(schema: str, physical: str, column: Column, *, if_not_exists: bool = False) -> str:
    return _alter(schema, physical, column_def(column, if_not_exists=if_not_exists))


def drop_column(schema: str, physical: str, column: str) -> str:
    dropped = exp.Column(this=identifier(column))
    return _alter(schema, physical, exp.Drop(kind="COLUMN", tables=[dropped]))


def alter_column_type(schema: str, physical: str, column: str, type_name: str) -> str:
    target = data_type(type_name)
    return _alter(
        schema,
        physical,
        exp.AlterColumn(
            this=identifier(column),
            dtype=target,
            using=exp.Cast(this=exp.Column(this=identifier(column)), to=target.copy()),
        ),
    )


def set_not_null(schema: str, physical: str, column: str) -> str:
    # Composed: sqlglot 30 renders it right but flags it as unsupported.
    return (
        f"ALTER TABLE {qualified(schema, physical)} ALTER COLUMN {name_sql(column)} SET NOT NULL"
    )


def drop_not_null(schema: str, physical: str, column: str) -> str:
    return _alter(schema, physical, exp.AlterColumn(this=identifier(column), drop=True,
                                                    allow_null=True))


def set_default(schema: str, physical: str, column: Column) -> str:
    if column.default is None:
        return drop_default(schema, physical, column.name)
    return _alter(
        schema,
        physical,
        exp.AlterColumn(this=identifier(column.name), default=default_expression(column.default)),
    )


def drop_default(schema: str, physical: str, column: str) -> str:
    return _alter(schema, physical, exp.AlterColumn(this=identifier(column), drop=True))


def set_primary_key(schema: str, physical: str, columns: Sequence[str],
                    *, drop_constraint: str | None) -> list[str]:
    statements = []
    if drop_constraint is not None:
        statements.append(
            _alter(schema, physical, exp.Drop(kind="CONSTRAINT",
                                        tables=[exp.Table(this=identifier(drop_constraint))]))
        )
    statements.append(
        _alter(
            schema,
            physical,
            exp.AddConstraint(
                expressions=[exp.PrimaryKey(expressions=[identifier(c) for c in columns])]
            ),
        )
    )
    return statements


def primary_key_name(physical: str) -> str:
    """PostgreSQL's own default name for it (kept by `rename_table`)."""
    return f"{physical}_pkey"


# -- indexes -------------------------------------------------------------------------------


def create_index(schema: str, physical: str, index: Index, *, if_not_exists: bool = False) -> str:
    create = exp.Create(
        kind="INDEX",
        unique=index.unique,
        exists=if_not_exists,
        this=exp.Index(
            this=identifier(index.name_on(physical)),
            table=table_ref(schema, physical),
            params=exp.IndexParameters(
                columns=[exp.Ordered(this=exp.Column(this=identifier(c))) for c in index.columns]
            ),
        ),
    )
    return render(create)


def drop_index(schema: str, name: str) -> str:
    return render(exp.Drop(kind="INDEX", tables=[table_ref(schema, name)], exists=True))
