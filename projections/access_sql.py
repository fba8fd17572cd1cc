"""Who may read a projection table, as SQL: row-level security (enabled and forced), one
tenant-scoped SELECT policy per reader role, explicit grants, the Realtime publication and
non-public schemas (the decisions are listed in projections.sql)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlglot
from sqlglot import exp

from projections.metadata import (
    TENANT_COLUMN,
)
from projections.roles import RUNTIME_ROLE
from projections.sql import (
    BYPASSES_RLS,
    DIALECT,
    PUBLICATION,
    identifier,
    name_sql,
    qualified,
    render,
    table_ref,
)

# -- row-level security, policies, grants, publication (text around rendered names) --------


def enable_rls(schema: str, physical: str) -> str:
    return f"ALTER TABLE {qualified(schema, physical)} ENABLE ROW LEVEL SECURITY"


def force_rls(schema: str, physical: str) -> str:
    return f"ALTER TABLE {qualified(schema, physical)} FORCE ROW LEVEL SECURITY"


def policy_name(role: str) -> str:
    return f"{role}_tenant_read"


def tenant_filter() -> exp.Expression:
    """The row filter of every reader policy; the sub-select makes PostgreSQL evaluate the
    claim once per statement instead of once per row."""
    current = sqlglot.parse_one("intent.current_tenant_id()", read=DIALECT)
    return exp.EQ(
        this=exp.Column(this=identifier(TENANT_COLUMN)),
        expression=exp.Subquery(this=exp.select(current)),
    )


def tenant_filter_sql() -> str:
    return render(tenant_filter())


def policy_roles(readers: Iterable[str]) -> list[str]:
    """The readers that need a policy (in a fixed order)."""
    return sorted(r for r in set(readers) if r not in BYPASSES_RLS)


def create_policy(schema: str, physical: str, role: str) -> str:
    return (
        f"CREATE POLICY {name_sql(policy_name(role))} ON {qualified(schema, physical)} "
        f"AS PERMISSIVE FOR SELECT TO {name_sql(role)} USING ({tenant_filter_sql()})"
    )


def drop_policy(schema: str, physical: str, name: str) -> str:
    return f"DROP POLICY IF EXISTS {name_sql(name)} ON {qualified(schema, physical)}"


def _principals(roles: Iterable[str]) -> list[exp.GrantPrincipal]:
    return [exp.GrantPrincipal(this=identifier(role)) for role in roles]


def _privileges(privileges: Iterable[str]) -> list[exp.GrantPrivilege]:
    checked = []
    for privilege in privileges:
        word = privilege.upper()
        if word not in _TABLE_PRIVILEGES and word != "ALL":
            raise ValueError(f"not a table privilege: {privilege!r}")
        checked.append(exp.GrantPrivilege(this=exp.var(word)))
    return checked


_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def revoke(schema: str, physical: str, privileges: Sequence[str], roles: Sequence[str]) -> str:
    return render(
        exp.Revoke(
            privileges=_privileges(privileges),
            kind="TABLE",
            securable=table_ref(schema, physical),
            principals=_principals(roles),
        )
    )


def grant(schema: str, physical: str, privileges: Sequence[str], roles: Sequence[str]) -> str:
    return render(
        exp.Grant(
            privileges=_privileges(privileges),
            kind="TABLE",
            securable=table_ref(schema, physical),
            principals=_principals(roles),
        )
    )


def publication_add(schema: str, physical: str) -> str:
    return f"ALTER PUBLICATION {name_sql(PUBLICATION)} ADD TABLE {qualified(schema, physical)}"


def publication_drop(schema: str, physical: str) -> str:
    return f"ALTER PUBLICATION {name_sql(PUBLICATION)} DROP TABLE {qualified(schema, physical)}"


# -- schemas -------------------------------------------------------------------------------


def schema_ddl(schema: str, readers: Iterable[str]) -> list[str]:
    """A projection schema other than public: created when missing, usable by its readers
    (public is usable by every role already)."""
    if schema == "public":
        return []
    create = exp.Create(kind="SCHEMA", this=exp.Table(this=identifier(schema)), exists=True)
    statements = [render(create)]
    roles = sorted({*readers, RUNTIME_ROLE})
    statements.append(grant_schema_usage(schema, roles))
    return statements


def grant_schema_usage(schema: str, roles: Sequence[str]) -> str:
    return render(
        exp.Grant(
            privileges=[exp.GrantPrivilege(this=exp.var("USAGE"))],
            kind="SCHEMA",
            securable=exp.Table(this=identifier(schema)),
            principals=_principals(roles),
        )
    )
