"""The one model both loaders build and the rules read: relations with their RLS switches,
policies and grants, and functions with who may execute them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tools.checks.rls.report import Finding

DEFAULT_SCHEMAS = ("public", "intent")
CLIENT_ROLES = ("anon", "authenticated")
PUBLIC = "public"
TENANT_COLUMN = "tenant_id"
# The tenancy primitive every tenant policy calls: it reveals only the caller's own claim
# (null without one), and an anon reader's policy cannot run without it, so anon may always
# execute it (migration *_anon_tenant_claim.sql grants it ahead of any anon reader).
ANON_CALLABLE = frozenset({"intent.current_tenant_id"})
# Rebuild twins of a projection table carry its grants while they exist.
TWIN_SUFFIXES = ("__rebuild", "__old")

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")
POLICY_COMMANDS = ("select", "insert", "update", "delete")


@dataclass
class Policy:
    name: str
    command: str  # all, select, insert, update, delete
    roles: frozenset[str]  # "public" for PUBLIC
    permissive: bool = True
    using: str | None = None
    check: str | None = None
    calls: tuple[str, ...] = ()  # functions the conditions call, as "schema.name" or "name"
    origin: str | None = None


@dataclass
class Relation:
    schema: str
    name: str
    kind: str  # table, view, materialized view, sequence
    columns: list[str] | None  # None: not known (created outside what was read)
    rls_enabled: bool = False
    rls_forced: bool = False
    security_invoker: bool = False
    policies: dict[str, Policy] = field(default_factory=dict)
    # grantee ("public" for PUBLIC) -> table-level privileges; live mode stores each client
    # role's effective privileges here (membership and PUBLIC included).
    privileges: dict[str, set[str]] = field(default_factory=dict)
    # grantee -> privilege -> columns (SQL mode: column grants revoke separately)
    column_privileges: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    grant_origins: dict[str, str] = field(default_factory=dict)
    origin: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def held_by(self, grantee: str) -> set[str]:
        held = set(self.privileges.get(grantee, set()))
        held |= {p for p, cols in self.column_privileges.get(grantee, {}).items() if cols}
        return held

    def effective(self, role: str) -> set[str]:
        return self.held_by(role) | self.held_by(PUBLIC)


@dataclass
class Function:
    schema: str
    name: str
    signature: str
    is_trigger: bool
    executors: set[str] = field(default_factory=set)  # grantees with EXECUTE
    origin: str | None = None


@dataclass
class Model:
    mode: str  # live or sql
    relations: dict[tuple[str, str], Relation] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    # function name ("schema.name", lower case) -> its source text(s)
    bodies: dict[str, list[str]] = field(default_factory=dict)
    notes: list[Finding] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def relation(self, schema: str, name: str, origin: str | None) -> Relation:
        """The relation so named; one created outside what was read (bootstrap, earlier
        history) is added as a table of unknown columns."""
        found = self.relations.get((schema, name))
        if found is None:
            found = Relation(schema=schema, name=name, kind="table", columns=None,
                             origin=origin)
            self.relations[(schema, name)] = found
        return found

    def function(self, schema: str, name: str, origin: str | None) -> Function:
        """The function so named; one created outside what was read is added with its
        grants unknown (nobody known to execute it)."""
        key = f"{schema}.{name}"
        found = self.functions.get(key)
        if found is None:
            found = Function(schema=schema, name=name, signature=f"{key}()",
                             is_trigger=False, origin=origin)
            self.functions[key] = found
        return found
