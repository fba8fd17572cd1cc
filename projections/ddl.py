"""Whole projection tables as statements: everything that creates a table (columns, indexes,
comment, access, publication) or a projection, renaming a rebuilt twin into place, and the
statements joined as one script."""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from projections.access_sql import (
    create_policy,
    enable_rls,
    force_rls,
    grant,
    policy_roles,
    publication_add,
    revoke,
    schema_ddl,
)
from projections.metadata import (
    Table,
)
from projections.roles import RUNTIME_ROLE
from projections.sql import (
    REVOKED_FROM,
    WRITER_PRIVILEGES,
    Layout,
    comment_table,
    create_index,
    create_table,
    identifier,
    name_sql,
    primary_key_name,
    qualified,
    render,
    table_ref,
)

# -- whole tables --------------------------------------------------------------------------


def access_ddl(projection: Layout, physical: str) -> list[str]:
    """RLS, policies and grants of one table, as a fresh table needs them."""
    schema = projection.schema_name
    statements = [enable_rls(schema, physical), force_rls(schema, physical)]
    statements += [
        create_policy(schema, physical, role) for role in policy_roles(projection.readers)
    ]
    statements.append(revoke(schema, physical, ["ALL"], REVOKED_FROM))
    readers = sorted(set(projection.readers))
    if readers:
        statements.append(grant(schema, physical, ["SELECT"], readers))
    statements.append(grant(schema, physical, WRITER_PRIVILEGES, [RUNTIME_ROLE]))
    return statements


def table_ddl(
    projection: Layout,
    table: Table,
    *,
    physical_name: str | None = None,
    realtime: bool | None = None,
) -> list[str]:
    """Everything that creates one table as the metadata says. `realtime=False` leaves a
    twin out of the publication (a rebuild's bulk writes need not be decoded for Realtime);
    whoever swaps it in then adds it with `publication_add`."""
    schema = projection.schema_name
    physical = physical_name if physical_name is not None else table.name
    identifier(physical)
    statements = [create_table(schema, physical, table)]
    statements += [create_index(schema, physical, index) for index in table.indexes]
    statements.append(comment_table(schema, physical, projection.name))
    statements += access_ddl(projection, physical)
    if projection.realtime if realtime is None else realtime:
        statements.append(publication_add(schema, physical))
    return statements


def projection_ddl(projection: Layout) -> list[str]:
    """All of a projection's tables (and its schema when it is not public)."""
    statements = schema_ddl(projection.schema_name, projection.readers)
    for table in projection.tables:
        statements += table_ddl(projection, table)
    return statements


def rename_table(
    projection: Layout, table: Table, *, from_name: str, to_name: str
) -> list[str]:
    """Rename a physical table with its indexes and primary key, so that after a swap the
    names are those a fresh `table_ddl` would have given (drift compares names)."""
    schema = projection.schema_name
    statements = [
        render(
            exp.Alter(
                this=table_ref(schema, from_name),
                kind="TABLE",
                actions=[exp.AlterRename(this=exp.Table(this=identifier(to_name)))],
            )
        )
    ]
    statements.append(
        f"ALTER TABLE {qualified(schema, to_name)} RENAME CONSTRAINT "
        f"{name_sql(primary_key_name(from_name))} TO {name_sql(primary_key_name(to_name))}"
    )
    for index in table.indexes:
        statements.append(
            render(
                exp.Alter(
                    this=table_ref(schema, index.name_on(from_name)),
                    kind="INDEX",
                    actions=[exp.AlterRename(this=exp.Table(this=identifier(index.name_on(to_name))))],
                )
            )
        )
    return statements


def script(statements: Iterable[str]) -> str:
    """Statements as one SQL text, each ending with a semicolon."""
    return "".join(f"{statement};\n" for statement in statements)
