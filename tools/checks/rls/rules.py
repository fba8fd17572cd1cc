"""The rules: the model in, findings out (the package's docstring lists them)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tools.checks.rls.conditions import reads_user_metadata, references_tenant
from tools.checks.rls.model import (
    ANON_CALLABLE,
    CLIENT_ROLES,
    DEFAULT_SCHEMAS,
    POLICY_COMMANDS,
    PUBLIC,
    TENANT_COLUMN,
    TWIN_SUFFIXES,
    Function,
    Model,
    Policy,
    Relation,
)
from tools.checks.rls.report import ERROR, WARNING, Finding, LintReport

Granted = dict[str, set[str]]  # client role -> the privileges it holds on a relation


def declared_anon_readers(catalog: Iterable[Any]) -> set[tuple[str, str]]:
    """(schema, table) of every projection table whose readers include anon."""
    declared: set[tuple[str, str]] = set()
    for projection in catalog:
        if "anon" in projection.readers:
            declared |= {(projection.schema_name, t.name) for t in projection.tables}
    return declared


def lint(
    model: Model,
    *,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    anon_readers: set[tuple[str, str]] | None = None,
) -> LintReport:
    """Judge the model's relations and functions in `schemas`; `anon_readers` are the
    tables anon may SELECT (see declared_anon_readers)."""
    readers = anon_readers if anon_readers is not None else set()
    wanted = set(schemas)
    findings: list[Finding] = list(model.notes)
    relations = [r for key, r in sorted(model.relations.items()) if key[0] in wanted]
    for relation in relations:
        findings += _relation_findings(model, relation, readers)
    functions = [f for _, f in sorted(model.functions.items()) if f.schema in wanted]
    needed = _needed_by_anon_policies(relations, readers) | ANON_CALLABLE
    findings += [f for f in (_anon_function(fn, needed) for fn in functions) if f]
    return LintReport(
        mode=model.mode,
        schemas=tuple(schemas),
        sources=tuple(model.sources),
        tables=sum(1 for r in relations if r.kind == "table"),
        functions=len(functions),
        findings=tuple(findings),
    )


def _anon_function(function: Function, needed: set[str]) -> Finding | None:
    executors = function.executors & {"anon", PUBLIC}
    if function.is_trigger or not executors:
        return None
    if f"{function.schema}.{function.name}" in needed:
        return None
    via = "anon" if "anon" in executors else "PUBLIC"
    return Finding(
        "anon-function", ERROR, f"function {function.signature}",
        f"anon may execute it (granted to {via}); nothing in this app is for anon but "
        "the declared projection readers: revoke execute from public, anon",
        role="anon", origin=function.origin,
    )


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
    granted = {role: relation.effective(role) for role in CLIENT_ROLES}
    found = _anon_grant(relation, granted, anon_readers)
    found += _view_bypass(relation, granted)
    found += _user_metadata(model, relation)
    if relation.kind != "table" or relation.columns is None:
        return found
    if TENANT_COLUMN not in relation.columns:
        return found + _shared_table(relation, granted)
    found += _rls_switches(relation)
    for role in CLIENT_ROLES:
        if granted[role]:
            found += _client_access(relation, role, granted[role])
    return found


def _anon_grant(
    relation: Relation, granted: Granted, anon_readers: set[tuple[str, str]]
) -> list[Finding]:
    allowed = {"SELECT"} if _declared(relation, anon_readers) else set()
    extra = granted["anon"] - allowed
    if not extra:
        return []
    return [Finding(
        "anon-grant", ERROR, relation.qualified,
        f"anon holds {', '.join(sorted(extra))} on this {relation.kind}; only SELECT on "
        "tables of projections that declare anon among their readers is meant for anon",
        role="anon", origin=relation.grant_origins.get("anon") or relation.origin,
    )]


def _view_bypass(relation: Relation, granted: Granted) -> list[Finding]:
    if relation.kind not in ("view", "materialized view"):
        return []
    clients = [role for role in CLIENT_ROLES if granted[role]]
    if not clients or (relation.kind == "view" and relation.security_invoker):
        return []
    why = ("a materialized view never applies RLS" if relation.kind != "view" else
           "it runs with its owner's rights, and the owner bypasses RLS; create it "
           "with (security_invoker = true)")
    return [Finding(
        "view-bypasses-rls", ERROR, relation.qualified,
        f"granted to {', '.join(clients)}, but {why}",
        role=clients[0], origin=relation.origin,
    )]


def _user_metadata(model: Model, relation: Relation) -> list[Finding]:
    found: list[Finding] = []
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
                "user-metadata", ERROR, f"{relation.qualified} policy {policy.name}",
                f"{culprit} reads user_metadata, which users can edit themselves; use "
                "app_metadata (set by the service) through intent.current_tenant_id()",
                origin=policy.origin,
            ))
    return found


def _shared_table(relation: Relation, granted: Granted) -> list[Finding]:
    clients = [role for role in CLIENT_ROLES if granted[role]]
    if not clients or relation.rls_enabled:
        return []
    return [Finding(
        "no-rls-client-table", WARNING, relation.qualified,
        f"no tenant_id and RLS off, yet granted to {', '.join(clients)}: every row "
        "is shared by all tenants; fine for reference data, otherwise add tenant_id",
        role=clients[0], origin=relation.origin,
    )]


def _rls_switches(relation: Relation) -> list[Finding]:
    if not relation.rls_enabled:
        return [Finding(
            "rls-disabled", ERROR, relation.qualified,
            "has tenant_id but row level security is not enabled: "
            "alter table ... enable row level security",
            origin=relation.origin,
        )]
    if not relation.rls_forced:
        return [Finding(
            "rls-not-forced", ERROR, relation.qualified,
            "row level security is enabled but not forced, so the table's owner sees every "
            "tenant: alter table ... force row level security",
            origin=relation.origin,
        )]
    return []


def _client_access(relation: Relation, role: str, held: set[str]) -> list[Finding]:
    """A client role's privileges on a tenant table against the policies that apply."""
    subject = relation.qualified
    origin = relation.grant_origins.get(role) or relation.grant_origins.get(PUBLIC)
    found: list[Finding] = []
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
        return found
    for command in POLICY_COMMANDS:
        if command.upper() not in held:
            continue
        policies = [p for p in applicable if _applies(p, role, command)]
        if any(not p.permissive and _scoped(p, command) for p in policies):
            continue
        found += [Finding(
            "policy-not-tenant-scoped", ERROR, f"{subject} policy {policy.name}",
            f"permissive policy lets {role} {command} rows without a tenant_id "
            "condition; permissive policies are OR-ed, so it opens every tenant",
            role=role, origin=policy.origin,
        ) for policy in policies if policy.permissive and not _scoped(policy, command)]
    return found


def _bodies(model: Model, name: str) -> list[str]:
    if "." in name:
        return model.bodies.get(name, [])
    # Unqualified: whatever the search path would find first among what we know.
    for schema in ("public", "pg_catalog"):
        if f"{schema}.{name}" in model.bodies:
            return model.bodies[f"{schema}.{name}"]
    return []
