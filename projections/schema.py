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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from projections import access_sql, ddl, sql
from projections.metadata import Table
from projections.shapes import (
    Difference,
    IndexShape,
    Severity,
    TableKey,
    TableShape,
    expected_table,
)
from projections.sql import Layout

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
        statements = access_sql.schema_ddl(schema, layout.readers) + ddl.table_ddl(layout, table)
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
                [access_sql.enable_rls(schema, name)])
    if not actual.rls_forced:
        out.add("rls_not_forced", "row-level security is not forced (the owner skips it)",
                [access_sql.force_rls(schema, name)])
    _compare_policies(out, layout, expected, actual)
    _compare_grants(out, layout, expected, actual)
    # public is usable by every role (granted by the platform, not by projections).
    unusable = sorted(expected.schema_usage - actual.schema_usage)
    if unusable and schema != "public":
        out.add("schema_usage", f"{', '.join(unusable)} may not use schema {schema}",
                [access_sql.grant_schema_usage(schema, unusable)])
    if actual.published != expected.published:
        if expected.published:
            out.add("publication", f"not in the {sql.PUBLICATION} publication",
                    [access_sql.publication_add(schema, name)])
        else:
            out.add("publication", f"in the {sql.PUBLICATION} publication, but not realtime",
                    [access_sql.publication_drop(schema, name)])
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
                    "missing", [access_sql.create_policy(schema, name, role)])
        elif have != want:
            out.add("policy_definition", f"policy {want.name} is {have.describe()}, the "
                    f"metadata says {want.describe()}",
                    [access_sql.drop_policy(schema, name, want.name),
                     access_sql.create_policy(schema, name, role)])
    wanted = {p.name for p in expected.policies}
    for have in actual.policies:
        if have.name not in wanted:
            out.add("extra_policy", f"policy {have.name} ({have.describe()}) is not in the "
                    "metadata", [access_sql.drop_policy(schema, name, have.name)])


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
            statements.append(access_sql.revoke(schema, name, extra, [role]))
        if missing:
            statements.append(access_sql.grant(schema, name, missing, [role]))
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


# -- repair --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairPlan:
    statements: tuple[str, ...]  # in order; one transaction
    fixed: tuple[Difference, ...]  # what the statements remove
    rebuild: tuple[Difference, ...]  # needs `intent projections rebuild`
    held_back: tuple[Difference, ...]  # destructive, not allowed


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
