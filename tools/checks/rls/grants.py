"""GRANT and REVOKE replayed into the model: table, column, sequence and function
privileges, for named objects and for ALL ... IN SCHEMA."""

from __future__ import annotations

from pglast import ast, enums

from tools.checks.rls.model import (
    COLUMN_PRIVILEGES,
    SEQUENCE_PRIVILEGES,
    TABLE_PRIVILEGES,
    Function,
    Model,
    Relation,
)
from tools.checks.rls.tree import UnreadableError, names, qualified, relation_key, role_name

Privileges = list[tuple[str, list[str] | None]]  # (privilege, its columns or None)

_OBJECT = enums.ObjectType
_ROUTINES = (_OBJECT.OBJECT_FUNCTION, _OBJECT.OBJECT_PROCEDURE, _OBJECT.OBJECT_ROUTINE)
_RELATIONS = (_OBJECT.OBJECT_TABLE, _OBJECT.OBJECT_SEQUENCE)


def replay_grant(model: Model, node: ast.GrantStmt, origin: str) -> None:
    """A GRANT or REVOKE on tables, sequences or functions; other objects (schemas, types,
    languages...) are not what this lint is about."""
    if not node.is_grant and node.grant_option:
        return  # REVOKE GRANT OPTION FOR: the privilege itself stays
    targets = _targets(model, node, origin)
    if targets is None:
        return
    privileges = _privileges(node.privileges)
    grantees = [role_name(spec) for spec in node.grantees or ()]
    for target in targets:
        for grantee in grantees:
            if isinstance(target, Function):
                _set_execute(target, grantee, privileges, grant=bool(node.is_grant))
            else:
                _set_privileges(target, grantee, privileges, grant=bool(node.is_grant),
                                origin=origin)


def _privileges(nodes: tuple[ast.AccessPriv, ...] | None) -> Privileges:
    if not nodes:  # ALL [PRIVILEGES]
        return [("ALL", None)]
    found: Privileges = []
    for node in nodes:
        word = str(node.priv_name).upper() if node.priv_name else "ALL"
        found.append((word, names(node.cols) if node.cols else None))
    return found


def _targets(
    model: Model, node: ast.GrantStmt, origin: str
) -> list[Relation] | list[Function] | None:
    objtype = node.objtype
    if node.targtype == enums.GrantTargetType.ACL_TARGET_ALL_IN_SCHEMA:
        schemas = set(names(node.objects))
        if objtype == _OBJECT.OBJECT_TABLE:
            return [r for (s, _), r in sorted(model.relations.items())
                    if s in schemas and r.kind != "sequence"]
        if objtype == _OBJECT.OBJECT_SEQUENCE:
            return [r for (s, _), r in sorted(model.relations.items())
                    if s in schemas and r.kind == "sequence"]
        if objtype in _ROUTINES:
            return [f for _, f in sorted(model.functions.items()) if f.schema in schemas]
        raise UnreadableError(f"ALL {getattr(objtype, 'name', objtype)} IN SCHEMA")
    if objtype in _ROUTINES:
        return [model.function(*qualified(names(o.objname)), origin) for o in node.objects]
    if objtype in _RELATIONS:
        return [model.relation(*relation_key(o), origin) for o in node.objects]
    return None


def _expand(privileges: Privileges, kind: str) -> Privileges:
    expanded: Privileges = []
    for word, columns in privileges:
        if word == "ALL":
            if columns is not None:
                every: tuple[str, ...] = COLUMN_PRIVILEGES
            elif kind == "sequence":
                every = SEQUENCE_PRIVILEGES
            else:
                every = TABLE_PRIVILEGES
            expanded += [(n, columns) for n in every]
        else:
            expanded.append((word, columns))
    return expanded


def _set_privileges(
    relation: Relation, grantee: str, privileges: Privileges, *, grant: bool, origin: str
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
    function: Function, grantee: str, privileges: Privileges, *, grant: bool
) -> None:
    if not any(word in ("ALL", "EXECUTE") for word, _ in privileges):
        return
    if grant:
        function.executors.add(grantee)
    else:
        function.executors.discard(grantee)
