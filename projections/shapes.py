"""Projection tables reduced to plain shapes, the same for the metadata and a live database:
columns with canonical types and defaults, the primary key, indexes, RLS flags, policies with
canonical USING expressions, grants, Realtime publication (see projections.schema)."""


from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from projections import access_sql, sql
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
    using = canonical_sql(access_sql.tenant_filter_sql())
    return tuple(
        PolicyShape(
            name=access_sql.policy_name(role),
            command="SELECT",
            permissive=True,
            roles=(role,),
            using=using,
            with_check=None,
        )
        for role in access_sql.policy_roles(readers)
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
