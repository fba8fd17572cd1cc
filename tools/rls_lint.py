"""Row-level security lint: one model of tables, policies and grants, two ways to build it.

The live loader reads a database's catalogs; the SQL loader replays migration files
statement by statement (sqlglot for CREATE TABLE, sqlglot's tokenizer for the statements
sqlglot cannot parse: policies, RLS switches, grants). Both feed the same rules, so a
migration is judged the same before and after it is applied.

Rules (errors make the lint fail; warnings are printed only):

- rls-disabled / rls-not-forced: a table with a tenant_id column has RLS enabled and forced
  (not forced, the table's owner, who writes migrations, silently sees every tenant).
- no-tenant-policy: each of anon/authenticated that holds any privilege on a tenant table
  has a policy (for it or PUBLIC) whose condition references tenant_id.
- policy-not-tenant-scoped: permissive policies are OR-ed, so one permissive policy that
  ignores tenant_id opens every tenant's rows for its command, unless a restrictive policy
  that references tenant_id covers that command.
- truncate-granted: RLS does not apply to TRUNCATE, so a client must never hold it on a
  tenant table.
- anon-grant / anon-function: nothing is granted to anon (directly or through PUBLIC),
  except SELECT on the tables whose projection declares anon among its readers, and
  EXECUTE on the functions their anon policies call and on intent.current_tenant_id (the
  tenant claim's reader). Trigger functions are exempt: they cannot be called.
- user-metadata: no policy condition, nor a function it calls, reads user_metadata
  (raw_user_meta_data, the JWT's user_metadata): users edit those claims themselves.
- view-bypasses-rls: a view granted to a client runs with its owner's rights (and the owner
  bypasses RLS) unless it is security_invoker; a materialized view never applies RLS.
- no-rls-client-table (warning): a table without tenant_id that clients may use with RLS
  off. A warning, not an error: shared reference data (no tenant) is legitimate, but
  someone should have decided so.
- unmodelled / unparsed (SQL mode): statements that change privileges in ways the SQL
  loader cannot follow (ALTER DEFAULT PRIVILEGES, dynamic SQL in DO blocks) are warnings;
  a GRANT, REVOKE, policy or RLS statement it cannot read is an error, because what it
  cannot read it cannot vouch for.

SQL-mode approximations: unqualified names are in `public`; functions are tracked by name
(overloads share one entry); a new function is executable by PUBLIC (PostgreSQL's default)
until revoked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import Token, TokenType, exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, SqlglotError, TokenError

from tools.sql_split import SqlSplitError, split_sql

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

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    subject: str
    message: str
    role: str | None = None
    origin: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "subject": self.subject,
            "role": self.role,
            "message": self.message,
            "origin": self.origin,
        }


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


@dataclass(frozen=True)
class LintReport:
    mode: str
    schemas: tuple[str, ...]
    sources: tuple[str, ...]
    tables: int
    functions: int
    findings: tuple[Finding, ...]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "schemas": list(self.schemas),
            "sources": list(self.sources),
            "checked": {"tables": self.tables, "functions": self.functions},
            "errors": [f.as_json() for f in self.errors],
            "warnings": [f.as_json() for f in self.warnings],
            "clean": not self.errors,
        }


# -- conditions ---------------------------------------------------------------------------

_TOKENIZER = Postgres().tokenizer_class()
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NOT_CODE = {
    TokenType.STRING, TokenType.NATIONAL_STRING, TokenType.RAW_STRING,
    TokenType.HEREDOC_STRING, TokenType.BYTE_STRING, TokenType.UNICODE_STRING,
    TokenType.BIT_STRING, TokenType.HEX_STRING, TokenType.NUMBER,
}
_USER_METADATA = re.compile(r"user_?meta_?data")
_ESCAPES = re.compile(r"\\(?:u|\+)?([0-9a-f]{4,6})|\\x([0-9a-f]{2})")


def _tokens(text: str) -> list[Token]:
    return list(_TOKENIZER.tokenize(text))


def _word(token: Token) -> str | None:
    """The identifier a token spells (folded to lower case unless it was quoted)."""
    if token.token_type == TokenType.IDENTIFIER:
        return token.text
    if token.token_type in _NOT_CODE or not _WORD.fullmatch(token.text):
        return None
    return token.text.lower()


def references_tenant(condition: str | None) -> bool:
    """Whether the condition names the tenant_id column (not merely the claim's text)."""
    if not condition:
        return False
    try:
        return any(_word(t) == TENANT_COLUMN for t in _tokens(condition))
    except TokenError:
        return TENANT_COLUMN in condition.lower()


def reads_user_metadata(text: str | None) -> bool:
    """Any spelling: raw_user_meta_data, 'user_metadata', "user_metadata", split across
    concatenated literals, or with escapes in the literal."""
    if not text:
        return False
    lowered = text.lower()
    if _USER_METADATA.search(lowered):
        return True
    decoded = _ESCAPES.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), lowered)
    squeezed = re.sub(r"\|\||['\"\s]|::\w+", "", decoded)
    if _USER_METADATA.search(squeezed):
        return True
    try:
        tokens = _tokens(text)
    except TokenError:
        return False
    joined = "".join(t.text.lower() for t in tokens if t.token_type != TokenType.DPIPE)
    joined = _ESCAPES.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), joined)
    return bool(_USER_METADATA.search(joined))


def called_functions(condition: str | None) -> tuple[str, ...]:
    """Names followed by "(" in a condition: "schema.name" when qualified, else "name"."""
    if not condition:
        return ()
    try:
        tokens = _tokens(condition)
    except TokenError:
        return ()
    names: list[str] = []
    for i, token in enumerate(tokens[:-1]):
        if tokens[i + 1].token_type != TokenType.L_PAREN:
            continue
        name = _word(token)
        if name is None:
            continue
        if i >= 2 and tokens[i - 1].token_type == TokenType.DOT:
            schema = _word(tokens[i - 2])
            if schema is not None:
                name = f"{schema}.{name}"
        names.append(name)
    return tuple(dict.fromkeys(names))


# -- the rules ----------------------------------------------------------------------------


def declared_anon_readers(catalog: Iterable[Any]) -> set[tuple[str, str]]:
    """(schema, table) of every projection table whose readers include anon."""
    declared: set[tuple[str, str]] = set()
    for projection in catalog:
        if "anon" in projection.readers:
            declared |= {(projection.schema_name, t.name) for t in projection.tables}
    return declared


def app_anon_readers() -> set[tuple[str, str]]:
    from projections.app import catalog

    return declared_anon_readers(catalog)


def _declared(relation: Relation, anon_readers: set[tuple[str, str]]) -> bool:
    name = relation.name
    for suffix in TWIN_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return (relation.schema, name) in anon_readers


def _conditions_for(policy: Policy, command: str) -> list[str | None]:
    """The expressions that decide `command` rows under this policy (WITH CHECK falls back
    to USING for ALL and UPDATE policies, as PostgreSQL does)."""
    check = policy.check if policy.check is not None else policy.using
    if command in ("select", "delete"):
        return [policy.using]
    if command == "insert":
        return [policy.check if policy.command == "insert" else check]
    return [policy.using, check]


def _scoped(policy: Policy, command: str) -> bool:
    return all(references_tenant(c) for c in _conditions_for(policy, command))


def _applies(policy: Policy, role: str, command: str | None = None) -> bool:
    if role not in policy.roles and PUBLIC not in policy.roles:
        return False
    return command is None or policy.command in ("all", command)


def lint(
    model: Model,
    *,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    anon_readers: set[tuple[str, str]] | None = None,
) -> LintReport:
    readers = anon_readers if anon_readers is not None else set()
    wanted = set(schemas)
    findings: list[Finding] = list(model.notes)
    relations = [r for key, r in sorted(model.relations.items()) if key[0] in wanted]
    for relation in relations:
        findings += _relation_findings(model, relation, readers)
    functions = [f for _, f in sorted(model.functions.items()) if f.schema in wanted]
    needed = _needed_by_anon_policies(relations, readers) | ANON_CALLABLE
    for function in functions:
        executors = function.executors & {"anon", PUBLIC}
        if function.is_trigger or not executors:
            continue
        if f"{function.schema}.{function.name}" in needed:
            continue
        via = "anon" if "anon" in executors else "PUBLIC"
        findings.append(Finding(
            "anon-function", ERROR, f"function {function.signature}",
            f"anon may execute it (granted to {via}); nothing in this app is for anon but "
            "the declared projection readers: revoke execute from public, anon",
            role="anon", origin=function.origin,
        ))
    return LintReport(
        mode=model.mode,
        schemas=tuple(schemas),
        sources=tuple(model.sources),
        tables=sum(1 for r in relations if r.kind == "table"),
        functions=len(functions),
        findings=tuple(findings),
    )


def _needed_by_anon_policies(
    relations: Sequence[Relation], anon_readers: set[tuple[str, str]]
) -> set[str]:
    """Functions the anon policies of declared anon-reader tables call: anon must be able
    to execute them (intent.current_tenant_id, typically), so granting it is no leak."""
    needed: set[str] = set()
    for relation in relations:
        if not _declared(relation, anon_readers):
            continue
        for policy in relation.policies.values():
            if _applies(policy, "anon"):
                needed |= {c if "." in c else f"public.{c}" for c in policy.calls}
    return needed


def _relation_findings(
    model: Model, relation: Relation, anon_readers: set[tuple[str, str]]
) -> list[Finding]:
    found: list[Finding] = []
    subject = relation.qualified
    granted = {role: relation.effective(role) for role in CLIENT_ROLES}

    allowed = {"SELECT"} if _declared(relation, anon_readers) else set()
    extra = granted["anon"] - allowed
    if extra:
        found.append(Finding(
            "anon-grant", ERROR, subject,
            f"anon holds {', '.join(sorted(extra))} on this {relation.kind}; only SELECT on "
            "tables of projections that declare anon among their readers is meant for anon",
            role="anon", origin=relation.grant_origins.get("anon") or relation.origin,
        ))

    if relation.kind in ("view", "materialized view"):
        clients = [role for role in CLIENT_ROLES if granted[role]]
        if clients and not (relation.kind == "view" and relation.security_invoker):
            why = ("a materialized view never applies RLS" if relation.kind != "view" else
                   "it runs with its owner's rights, and the owner bypasses RLS; create it "
                   "with (security_invoker = true)")
            found.append(Finding(
                "view-bypasses-rls", ERROR, subject,
                f"granted to {', '.join(clients)}, but {why}",
                role=clients[0], origin=relation.origin,
            ))

    for policy in relation.policies.values():
        texts = [policy.using, policy.check]
        culprit = "its condition" if any(reads_user_metadata(t) for t in texts) else None
        if culprit is None:
            for name in policy.calls:
                if any(reads_user_metadata(body) for body in _bodies(model, name)):
                    culprit = f"the function {name} it calls"
                    break
        if culprit:
            found.append(Finding(
                "user-metadata", ERROR, f"{subject} policy {policy.name}",
                f"{culprit} reads user_metadata, which users can edit themselves; use "
                "app_metadata (set by the service) through intent.current_tenant_id()",
                origin=policy.origin,
            ))

    if relation.kind != "table" or relation.columns is None:
        return found
    if TENANT_COLUMN not in relation.columns:
        clients = [role for role in CLIENT_ROLES if granted[role]]
        if clients and not relation.rls_enabled:
            found.append(Finding(
                "no-rls-client-table", WARNING, subject,
                f"no tenant_id and RLS off, yet granted to {', '.join(clients)}: every row "
                "is shared by all tenants; fine for reference data, otherwise add tenant_id",
                role=clients[0], origin=relation.origin,
            ))
        return found

    if not relation.rls_enabled:
        found.append(Finding(
            "rls-disabled", ERROR, subject,
            "has tenant_id but row level security is not enabled: "
            "alter table ... enable row level security",
            origin=relation.origin,
        ))
    elif not relation.rls_forced:
        found.append(Finding(
            "rls-not-forced", ERROR, subject,
            "row level security is enabled but not forced, so the table's owner sees every "
            "tenant: alter table ... force row level security",
            origin=relation.origin,
        ))

    for role in CLIENT_ROLES:
        held = granted[role]
        if not held:
            continue
        origin = relation.grant_origins.get(role) or relation.grant_origins.get(PUBLIC)
        if "TRUNCATE" in held:
            found.append(Finding(
                "truncate-granted", ERROR, subject,
                f"{role} may TRUNCATE it, and RLS does not apply to TRUNCATE",
                role=role, origin=origin,
            ))
        applicable = [p for p in relation.policies.values() if _applies(p, role)]
        if not any(references_tenant(p.using) or references_tenant(p.check) for p in applicable):
            found.append(Finding(
                "no-tenant-policy", ERROR, subject,
                f"{role} holds {', '.join(sorted(held))} but no policy for {role} (or PUBLIC) "
                "references tenant_id",
                role=role, origin=origin or relation.origin,
            ))
            continue
        for command in POLICY_COMMANDS:
            if command.upper() not in held:
                continue
            policies = [p for p in applicable if _applies(p, role, command)]
            if any(not p.permissive and _scoped(p, command) for p in policies):
                continue
            for policy in policies:
                if policy.permissive and not _scoped(policy, command):
                    found.append(Finding(
                        "policy-not-tenant-scoped", ERROR, f"{subject} policy {policy.name}",
                        f"permissive policy lets {role} {command} rows without a tenant_id "
                        "condition; permissive policies are OR-ed, so it opens every tenant",
                        role=role, origin=policy.origin,
                    ))
    return found


def _bodies(model: Model, name: str) -> list[str]:
    if "." in name:
        return model.bodies.get(name, [])
    # Unqualified: whatever the search path would find first among what we know.
    for schema in ("public", "pg_catalog"):
        if f"{schema}.{name}" in model.bodies:
            return model.bodies[f"{schema}.{name}"]
    return []


# -- live ---------------------------------------------------------------------------------

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


def load_live(conn: Any, schemas: Sequence[str] = DEFAULT_SCHEMAS) -> Model:
    """The model of a live database, read through a psycopg (sync) connection."""
    model = Model(mode="live")
    params: dict[str, Any] = {"schemas": list(schemas)}
    roles = {row[0] for row in conn.execute(
        "select rolname::text from pg_roles where rolname = any(%s)", (list(CLIENT_ROLES),)
    ).fetchall()}
    for missing in sorted(set(CLIENT_ROLES) - roles):
        model.notes.append(Finding(
            "missing-role", WARNING, f"role {missing}",
            "does not exist in this database (not a Supabase project?); not checked",
        ))
    by_oid: dict[int, Relation] = {}
    for schema, name, kind, enabled, forced, options, columns, oid in conn.execute(
        _LIVE_RELATIONS, params
    ).fetchall():
        invoker = any(
            o.split("=", 1)[0] == "security_invoker"
            and o.split("=", 1)[1].lower() in ("true", "on", "1", "yes")
            for o in options if "=" in o
        )
        relation = Relation(
            schema=schema, name=name, kind=_KINDS[kind], columns=list(columns),
            rls_enabled=enabled, rls_forced=forced, security_invoker=invoker,
        )
        model.relations[(schema, name)] = relation
        by_oid[oid] = relation
    for oid, role, held in conn.execute(_LIVE_PRIVILEGES, params | {
        "roles": sorted(roles),
        "table": list(TABLE_PRIVILEGES),
        "column": list(COLUMN_PRIVILEGES),
        "sequence": list(SEQUENCE_PRIVILEGES),
    }).fetchall():
        if held and oid in by_oid:
            by_oid[oid].privileges[role] = set(held)
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
    for schema, name, signature, is_trigger, anon in conn.execute(
        _LIVE_FUNCTIONS, params | {"anon": "anon" in roles}
    ).fetchall():
        model.functions[signature] = Function(
            schema=schema, name=name, signature=signature, is_trigger=is_trigger,
            executors={"anon"} if anon else set(),
        )
    return model


# -- SQL ----------------------------------------------------------------------------------


class _UnreadableError(Exception):
    """A statement in scope that the loader could not follow."""


class _Cursor:
    """Just enough of a parser over sqlglot's tokens for the statements sqlglot leaves as
    commands: keywords are compared in lower case, quoted identifiers never as keywords."""

    def __init__(self, text: str, tokens: list[Token]):
        self.text = text
        self.tokens = tokens
        self.i = 0

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def kw(self, ahead: int = 0) -> str | None:
        token = self.peek(ahead)
        if token is None or token.token_type == TokenType.IDENTIFIER:
            return None
        word = _word(token)
        return word

    def at(self, *words: str) -> bool:
        return all(self.kw(k) == w for k, w in enumerate(words))

    def accept(self, *words: str) -> bool:
        if self.at(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise _UnreadableError(f"expected {' '.join(words).upper()}")

    def is_type(self, kind: TokenType) -> bool:
        token = self.peek()
        return token is not None and token.token_type == kind

    def name(self) -> str:
        token = self.peek()
        word = _word(token) if token is not None else None
        if word is None:
            raise _UnreadableError("expected a name")
        self.i += 1
        return word

    def qualified(self) -> tuple[str | None, str]:
        parts = [self.name()]
        while self.is_type(TokenType.DOT):
            self.i += 1
            parts.append(self.name())
        if len(parts) == 1:
            return None, parts[0]
        return parts[-2], parts[-1]

    def group(self) -> str:
        """The text inside the parenthesised group at the cursor, consumed."""
        if not self.is_type(TokenType.L_PAREN):
            raise _UnreadableError("expected (")
        depth = 0
        start = self.i
        while not self.done():
            kind = self.tokens[self.i].token_type
            if kind == TokenType.L_PAREN:
                depth += 1
            elif kind == TokenType.R_PAREN:
                depth -= 1
                if depth == 0:
                    first, last = self.tokens[start], self.tokens[self.i]
                    self.i += 1
                    return self.text[first.end + 1 : last.start].strip()
            self.i += 1
        raise _UnreadableError("unbalanced parentheses")

    def names_in_group(self) -> list[str]:
        inner = self.group()
        return [n for n in (_word_list(inner)) if n]

    def comma_list(self, item: Any, stop: Sequence[str] = ()) -> list[Any]:
        items = [item()]
        while self.is_type(TokenType.COMMA):
            self.i += 1
            if any(self.kw() == s for s in stop):
                break
            items.append(item())
        return items

    def split_top_level(self) -> list[_Cursor]:
        """The rest of the statement, split at commas outside parentheses."""
        parts: list[list[Token]] = [[]]
        depth = 0
        for token in self.tokens[self.i :]:
            if token.token_type == TokenType.L_PAREN:
                depth += 1
            elif token.token_type == TokenType.R_PAREN:
                depth -= 1
            if token.token_type == TokenType.COMMA and depth == 0:
                parts.append([])
                continue
            parts[-1].append(token)
        self.i = len(self.tokens)
        return [_Cursor(self.text, part) for part in parts if part]


def _word_list(text: str) -> list[str]:
    words: list[str] = []
    for chunk in _Cursor(text, _tokens(text)).split_top_level():
        token = chunk.peek()
        word = _word(token) if token is not None else None
        if word:
            words.append(word)
    return words


@dataclass
class _SqlLoader:
    model: Model = field(default_factory=lambda: Model(mode="sql"))

    # relations ---------------------------------------------------------------------------

    def relation(self, schema: str | None, name: str, origin: str) -> Relation:
        key = (schema or "public", name)
        found = self.model.relations.get(key)
        if found is None:  # created outside what was read (bootstrap, earlier history)
            found = Relation(schema=key[0], name=name, kind="table", columns=None,
                             origin=origin)
            self.model.relations[key] = found
        return found

    def create(self, relation: Relation) -> None:
        self.model.relations[(relation.schema, relation.name)] = relation

    # statements --------------------------------------------------------------------------

    def statement(self, text: str, origin: str) -> None:
        try:
            tokens = _tokens(text)
        except TokenError:
            self._unreadable(text, origin, "sqlglot cannot tokenize it")
            return
        cur = _Cursor(text, tokens)
        try:
            self._dispatch(cur, text, origin)
        except _UnreadableError as exc:
            self._unreadable(text, origin, str(exc))

    def _unreadable(self, text: str, origin: str, why: str) -> None:
        head = " ".join(text.split())[:80]
        lowered = head.lower()
        in_scope = lowered.startswith(("grant", "revoke", "create policy", "alter policy",
                                       "drop policy")) or "row level security" in lowered
        self.model.notes.append(Finding(
            "unparsed" if in_scope else "unmodelled", ERROR if in_scope else WARNING,
            head, f"the SQL lint could not read this statement ({why}); lint the database "
            "live or simplify it", origin=origin,
        ))

    def _dispatch(self, cur: _Cursor, text: str, origin: str) -> None:
        if cur.accept("create"):
            cur.accept("or", "replace")
            for skip in ("global", "local", "temporary", "temp", "unlogged"):
                if cur.at(skip):
                    if skip in ("temporary", "temp"):
                        return  # session-local: not part of the schema
                    cur.i += 1
            if cur.at("table"):
                self._create_table(text, origin, cur)
            elif cur.at("view") or cur.at("materialized", "view") or cur.at("recursive"):
                self._create_view(text, origin, cur)
            elif cur.accept("policy"):
                self._create_policy(cur, origin)
            elif cur.at("function") or cur.at("procedure"):
                cur.i += 1
                self._create_function(cur, text, origin)
            elif cur.accept("sequence"):
                cur.accept("if", "not", "exists")
                schema, name = cur.qualified()
                self.create(Relation(schema=schema or "public", name=name, kind="sequence",
                                     columns=[], origin=origin))
        elif cur.accept("alter"):
            if cur.accept("table"):
                self._alter_table(cur, origin)
            elif cur.accept("policy"):
                self._alter_policy(cur, origin)
            elif cur.at("view") or cur.at("materialized", "view"):
                self._alter_view(cur)
            elif cur.at("default", "privileges"):
                self.model.notes.append(Finding(
                    "unmodelled", WARNING, " ".join(text.split())[:80],
                    "ALTER DEFAULT PRIVILEGES is not modelled by the SQL lint: objects "
                    "created later may hold privileges it does not see; lint live too",
                    origin=origin,
                ))
        elif cur.accept("drop"):
            self._drop(cur)
        elif cur.accept("grant"):
            self._grant(cur, origin, grant=True)
        elif cur.accept("revoke"):
            self._grant(cur, origin, grant=False)
        elif cur.at("do"):
            lowered = text.lower()
            if re.search(r"\bgrant\b|\brevoke\b|\bpolicy\b|row\s+level\s+security", lowered):
                self.model.notes.append(Finding(
                    "unmodelled", WARNING, " ".join(text.split())[:80],
                    "a DO block changes grants, policies or RLS; the SQL lint cannot follow "
                    "dynamic SQL: lint live too",
                    origin=origin,
                ))

    def _create_table(self, text: str, origin: str, cur: _Cursor) -> None:
        parsed = _parse(text)
        if isinstance(parsed, exp.Create) and parsed.args.get("kind") == "TABLE":
            relation = self._table_from_ast(parsed, origin)
        else:
            relation = self._table_from_tokens(cur, origin)
        if relation is not None:
            self.create(relation)

    def _table_from_ast(self, create: exp.Create, origin: str) -> Relation | None:
        target = create.this
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table):
            return None
        schema = _ident(table.args.get("db")) or "public"
        name = _ident(table.args.get("this"))
        if name is None:
            return None
        columns: list[str] = []
        if isinstance(target, exp.Schema):
            for item in target.expressions:
                if isinstance(item, exp.ColumnDef):
                    column = _ident(item.this)
                    if column:
                        columns.append(column)
                elif isinstance(item, exp.LikeProperty) and isinstance(item.this, exp.Table):
                    source = self.model.relations.get(
                        (_ident(item.this.args.get("db")) or "public",
                         _ident(item.this.args.get("this")) or "")
                    )
                    if source is None or source.columns is None:
                        return Relation(schema=schema, name=name, kind="table", columns=None,
                                        origin=origin)
                    columns += source.columns
        query = create.expression
        if isinstance(query, exp.Query):
            columns += [c.lower() for c in query.named_selects]
        partition = create.find(exp.PartitionedOfProperty)
        if partition is not None and isinstance(partition.this, exp.Table):
            parent = self.model.relations.get(
                (_ident(partition.this.args.get("db")) or "public",
                 _ident(partition.this.args.get("this")) or "")
            )
            return Relation(schema=schema, name=name, kind="table",
                            columns=list(parent.columns) if parent and parent.columns else None,
                            origin=origin)
        return Relation(schema=schema, name=name, kind="table", columns=columns, origin=origin)

    def _table_from_tokens(self, cur: _Cursor, origin: str) -> Relation | None:
        cur.expect("table")
        cur.accept("if", "not", "exists")
        schema, name = cur.qualified()
        if not cur.is_type(TokenType.L_PAREN):
            return Relation(schema=schema or "public", name=name, kind="table", columns=None,
                            origin=origin)
        body = cur.group()
        columns: list[str] = []
        constraint_words = ("constraint", "primary", "unique", "check", "foreign", "exclude")
        for item in _Cursor(body, _tokens(body)).split_top_level():
            first = item.kw()
            if first in constraint_words:
                continue
            if first == "like":
                return Relation(schema=schema or "public", name=name, kind="table",
                                columns=None, origin=origin)
            columns.append(item.name())
        return Relation(schema=schema or "public", name=name, kind="table", columns=columns,
                        origin=origin)

    def _create_view(self, text: str, origin: str, cur: _Cursor) -> None:
        materialized = cur.accept("materialized")
        cur.accept("recursive")
        cur.expect("view")
        cur.accept("if", "not", "exists")
        schema, name = cur.qualified()
        invoker = False
        if cur.is_type(TokenType.L_PAREN):  # column list
            cur.group()
        if cur.accept("with") and cur.is_type(TokenType.L_PAREN):
            invoker = _invoker_on(cur.group())
        columns: list[str] | None = None
        parsed = _parse(text)
        if isinstance(parsed, exp.Create) and isinstance(parsed.expression, exp.Query):
            columns = [c.lower() for c in parsed.expression.named_selects]
        view = Relation(
            schema=schema or "public", name=name,
            kind="materialized view" if materialized else "view",
            columns=columns, security_invoker=invoker, origin=origin,
        )
        replaced = self.model.relations.get((view.schema, name))
        if replaced is not None:  # CREATE OR REPLACE keeps the view's grants
            view.privileges = replaced.privileges
            view.column_privileges = replaced.column_privileges
            view.grant_origins = replaced.grant_origins
        self.create(view)

    def _alter_view(self, cur: _Cursor) -> None:
        cur.accept("materialized")
        cur.expect("view")
        cur.accept("if", "exists")
        schema, name = cur.qualified()
        relation = self.model.relations.get((schema or "public", name))
        if relation is None:
            return
        if cur.accept("set") and cur.is_type(TokenType.L_PAREN):
            options = cur.group()
            if "security_invoker" in options.lower():
                relation.security_invoker = _invoker_on(options)
        elif cur.accept("reset") and cur.is_type(TokenType.L_PAREN):
            if "security_invoker" in _word_list(cur.group()):
                relation.security_invoker = False
        elif cur.accept("rename", "to"):
            self._rename(relation, cur.name())
        elif cur.accept("set", "schema"):
            self._move(relation, cur.name())

    def _rename(self, relation: Relation, name: str) -> None:
        del self.model.relations[(relation.schema, relation.name)]
        relation.name = name
        self.model.relations[(relation.schema, name)] = relation

    def _move(self, relation: Relation, schema: str) -> None:
        del self.model.relations[(relation.schema, relation.name)]
        relation.schema = schema
        self.model.relations[(schema, relation.name)] = relation

    def _alter_table(self, cur: _Cursor, origin: str) -> None:
        cur.accept("if", "exists")
        cur.accept("only")
        schema, name = cur.qualified()
        if cur.is_type(TokenType.STAR):
            cur.i += 1
        relation = self.relation(schema, name, origin)
        for action in cur.split_top_level():
            self._table_action(relation, action)

    def _table_action(self, relation: Relation, act: _Cursor) -> None:
        rls = ("row", "level", "security")
        if act.accept("enable", *rls):
            relation.rls_enabled = True
        elif act.accept("disable", *rls):
            relation.rls_enabled = False
        elif act.accept("force", *rls):
            relation.rls_forced = True
        elif act.accept("no", "force", *rls):
            relation.rls_forced = False
        elif act.accept("add"):
            if act.kw() in ("constraint", "primary", "unique", "check", "foreign", "exclude"):
                return
            act.accept("column")
            act.accept("if", "not", "exists")
            column = act.name()
            if relation.columns is not None and column not in relation.columns:
                relation.columns.append(column)
        elif act.accept("drop"):
            if act.kw() == "constraint":
                return
            act.accept("column")
            act.accept("if", "exists")
            column = act.name()
            if relation.columns is not None and column in relation.columns:
                relation.columns.remove(column)
        elif act.accept("rename"):
            if act.accept("to"):
                self._rename(relation, act.name())
                return
            if act.accept("constraint"):
                return
            act.accept("column")
            old = act.name()
            act.expect("to")
            new = act.name()
            if relation.columns is not None and old in relation.columns:
                relation.columns[relation.columns.index(old)] = new
        elif act.accept("set", "schema"):
            self._move(relation, act.name())

    # policies ----------------------------------------------------------------------------

    def _create_policy(self, cur: _Cursor, origin: str) -> None:
        name = cur.name()
        cur.expect("on")
        schema, table = cur.qualified()
        policy = Policy(name=name, command="all", roles=frozenset({PUBLIC}), origin=origin)
        if cur.accept("as"):
            kind = cur.name()
            if kind not in ("permissive", "restrictive"):
                raise _UnreadableError(f"unknown policy kind {kind}")
            policy.permissive = kind == "permissive"
        if cur.accept("for"):
            command = cur.name()
            if command not in ("all", *POLICY_COMMANDS):
                raise _UnreadableError(f"unknown policy command {command}")
            policy.command = command
        self._policy_clauses(cur, policy)
        self.relation(schema, table, origin).policies[name] = policy

    def _policy_clauses(self, cur: _Cursor, policy: Policy) -> None:
        while not cur.done():
            if cur.accept("to"):
                policy.roles = frozenset(cur.comma_list(lambda: _role(cur)))
            elif cur.accept("using"):
                policy.using = cur.group()
            elif cur.accept("with", "check"):
                policy.check = cur.group()
            else:
                token = cur.peek()
                raise _UnreadableError(f"unexpected {token.text if token else 'end'!r}")
        policy.calls = tuple(dict.fromkeys(
            called_functions(policy.using) + called_functions(policy.check)
        ))

    def _alter_policy(self, cur: _Cursor, origin: str) -> None:
        name = cur.name()
        cur.expect("on")
        schema, table = cur.qualified()
        relation = self.relation(schema, table, origin)
        policy = relation.policies.get(name)
        if policy is None:
            policy = Policy(name=name, command="all", roles=frozenset({PUBLIC}), origin=origin)
            relation.policies[name] = policy
        if cur.accept("rename", "to"):
            new = cur.name()
            del relation.policies[name]
            policy.name = new
            relation.policies[new] = policy
            return
        policy.origin = origin
        self._policy_clauses(cur, policy)

    # drops -------------------------------------------------------------------------------

    def _drop(self, cur: _Cursor) -> None:
        if cur.accept("policy"):
            cur.accept("if", "exists")
            name = cur.name()
            cur.expect("on")
            schema, table = cur.qualified()
            relation = self.model.relations.get((schema or "public", table))
            if relation is not None:
                relation.policies.pop(name, None)
            return
        cur.accept("materialized")
        if cur.at("table") or cur.at("view") or cur.at("sequence"):
            cur.i += 1
            cur.accept("if", "exists")
            for schema, name in cur.comma_list(cur.qualified):
                self.model.relations.pop((schema or "public", name), None)
        elif cur.at("function") or cur.at("procedure") or cur.at("routine"):
            cur.i += 1
            cur.accept("if", "exists")
            for schema, name in cur.comma_list(lambda: self._signature(cur)):
                self.model.functions.pop(f"{schema}.{name}", None)

    # functions ---------------------------------------------------------------------------

    def _signature(self, cur: _Cursor) -> tuple[str, str]:
        schema, name = cur.qualified()
        if cur.is_type(TokenType.L_PAREN):
            cur.group()
        return schema or "public", name

    def _create_function(self, cur: _Cursor, text: str, origin: str) -> None:
        schema, name = self._signature(cur)
        is_trigger = False
        body: str | None = None
        while not cur.done():
            if cur.accept("returns"):
                is_trigger = cur.kw() in ("trigger", "event_trigger")
                continue
            token = cur.peek()
            if token is not None and cur.kw() == "as":
                cur.i += 1
                literal = cur.peek()
                if literal is not None and literal.token_type in _NOT_CODE:
                    body = literal.text
                continue
            if cur.at("begin", "atomic"):
                body = text[token.start:] if token is not None else None
                break
            cur.i += 1
        key = f"{schema}.{name}"
        existing = self.model.functions.get(key)
        if existing is None:  # a new function: PostgreSQL grants EXECUTE to PUBLIC
            self.model.functions[key] = Function(
                schema=schema, name=name, signature=f"{schema}.{name}()",
                is_trigger=is_trigger, executors={PUBLIC}, origin=origin,
            )
        else:
            existing.is_trigger = is_trigger
        self.model.bodies[key] = [body or text]

    # grants ------------------------------------------------------------------------------

    def _grant(self, cur: _Cursor, origin: str, *, grant: bool) -> None:
        if not grant and cur.accept("grant", "option", "for"):
            return  # the privilege itself stays
        privileges: list[tuple[str, list[str] | None]] = []
        while True:
            if cur.accept("all"):
                cur.accept("privileges")
                word = "ALL"
            else:
                word = cur.name().upper()
                if word in ("ON", "TO", "FROM"):
                    raise _UnreadableError("no privilege named")
            columns = cur.names_in_group() if cur.is_type(TokenType.L_PAREN) else None
            privileges.append((word, columns))
            if not cur.is_type(TokenType.COMMA):
                break
            cur.i += 1
        if not cur.accept("on"):
            return  # role membership
        targets = self._targets(cur, origin)
        if targets is None:
            return  # schemas, types, languages...: not what this lint is about
        if not cur.accept("to" if grant else "from"):
            raise _UnreadableError("expected TO or FROM")
        grantees = cur.comma_list(lambda: _role(cur))
        for target in targets:
            for grantee in grantees:
                if isinstance(target, Function):
                    _set_execute(target, grantee, privileges, grant=grant)
                else:
                    _set_privileges(target, grantee, privileges, grant=grant, origin=origin)

    def _targets(
        self, cur: _Cursor, origin: str
    ) -> list[Relation] | list[Function] | None:
        if cur.accept("all"):
            what = cur.name()
            cur.expect("in", "schema")
            schemas = set(cur.comma_list(cur.name))
            if what == "tables":
                return [r for (s, _), r in sorted(self.model.relations.items())
                        if s in schemas and r.kind != "sequence"]
            if what == "sequences":
                return [r for (s, _), r in sorted(self.model.relations.items())
                        if s in schemas and r.kind == "sequence"]
            if what in ("functions", "procedures", "routines"):
                return [f for _, f in sorted(self.model.functions.items()) if f.schema in schemas]
            raise _UnreadableError(f"ALL {what.upper()} IN SCHEMA")
        if cur.at("function") or cur.at("procedure") or cur.at("routine"):
            cur.i += 1
            found: list[Function] = []
            for schema, name in cur.comma_list(lambda: self._signature(cur)):
                function = self.model.functions.get(f"{schema}.{name}")
                if function is None:  # created outside what was read: its grants unknown
                    function = Function(schema=schema, name=name,
                                        signature=f"{schema}.{name}()", is_trigger=False,
                                        origin=origin)
                    self.model.functions[f"{schema}.{name}"] = function
                found.append(function)
            return found
        if cur.kw() in ("schema", "database", "domain", "type", "language", "large",
                        "foreign", "tablespace", "parameter"):
            return None
        cur.accept("table")
        cur.accept("sequence")
        return [self.relation(s, n, origin) for s, n in cur.comma_list(cur.qualified)]


def _parse(text: str) -> exp.Expr | None:
    """sqlglot's tree, or None; its "falling back to Command" warnings stay quiet, since
    a statement it cannot parse is read from its tokens instead."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return sqlglot.parse_one(text, read="postgres")
    except (ParseError, SqlglotError):
        return None
    finally:
        logger.setLevel(level)


def _role(cur: _Cursor) -> str:
    cur.accept("group")
    return cur.name()


def _ident(node: Any) -> str | None:
    if not isinstance(node, exp.Identifier):
        return None
    return str(node.this) if node.quoted else str(node.this).lower()


def _invoker_on(options: str) -> bool:
    match = re.search(r"security_invoker\s*(?:=\s*)?(\w+)?", options, re.IGNORECASE)
    if match is None:
        return False
    value = (match.group(1) or "true").lower()
    return value in ("true", "on", "1", "yes")


def _expand(privileges: list[tuple[str, list[str] | None]], kind: str) -> list[
    tuple[str, list[str] | None]
]:
    expanded: list[tuple[str, list[str] | None]] = []
    for word, columns in privileges:
        if word == "ALL":
            if columns is not None:
                names: tuple[str, ...] = COLUMN_PRIVILEGES
            elif kind == "sequence":
                names = SEQUENCE_PRIVILEGES
            else:
                names = TABLE_PRIVILEGES
            expanded += [(n, columns) for n in names]
        else:
            expanded.append((word, columns))
    return expanded


def _set_privileges(
    relation: Relation,
    grantee: str,
    privileges: list[tuple[str, list[str] | None]],
    *,
    grant: bool,
    origin: str,
) -> None:
    table_level = relation.privileges.setdefault(grantee, set())
    by_column = relation.column_privileges.setdefault(grantee, {})
    for word, columns in _expand(privileges, relation.kind):
        if grant:
            if columns is None:
                table_level.add(word)
            else:
                by_column.setdefault(word, set()).update(columns)
        elif columns is None:  # revoking a table privilege revokes its column grants too
            table_level.discard(word)
            by_column.pop(word, None)
        else:
            by_column.get(word, set()).difference_update(columns)
    if grant:
        relation.grant_origins[grantee] = origin


def _set_execute(
    function: Function,
    grantee: str,
    privileges: list[tuple[str, list[str] | None]],
    *,
    grant: bool,
) -> None:
    if not any(word in ("ALL", "EXECUTE") for word, _ in privileges):
        return
    if grant:
        function.executors.add(grantee)
    else:
        function.executors.discard(grantee)


def load_sql(sources: Sequence[tuple[str, str]]) -> Model:
    """Replay SQL scripts, given as (label, text) in order, into one model."""
    loader = _SqlLoader()
    for label, script in sources:
        loader.model.sources.append(label)
        try:
            statements = split_sql(script)
        except SqlSplitError as exc:
            loader.model.notes.append(Finding(
                "unparsed", ERROR, label, f"cannot split into statements: {exc}", origin=label,
            ))
            continue
        for statement in statements:
            loader.statement(statement.text, f"{label}:{statement.line}")
    return loader.model
