"""Reading PostgreSQL's parse tree (pglast's nodes): names, roles, options, deparsing."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast, enums
from pglast.stream import RawStream

from tools.checks.rls.model import PUBLIC

_TRUE = ("true", "on", "1", "yes")
_ROLE_KEYWORDS = {
    enums.RoleSpecType.ROLESPEC_PUBLIC: PUBLIC,
    enums.RoleSpecType.ROLESPEC_CURRENT_USER: "current_user",
    enums.RoleSpecType.ROLESPEC_SESSION_USER: "session_user",
    enums.RoleSpecType.ROLESPEC_CURRENT_ROLE: "current_role",
}


class UnreadableError(Exception):
    """A statement in scope that the loader could not follow."""


def walk(node: object) -> Iterator[ast.Node]:
    """Every node under `node` (itself included), depth first, in source order; without
    recursion, since a long chain of || nests as deep as it is long."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            stack.extend(reversed([getattr(item, member) for member in item]))
        elif isinstance(item, tuple):
            stack.extend(reversed(item))


def names(parts: object) -> list[str]:
    """The strings of a qualified name (a tuple of String nodes); [] for anything else."""
    if not isinstance(parts, tuple):
        return []
    return [str(p.sval) for p in parts if isinstance(p, ast.String)]


def qualified(parts: list[str]) -> tuple[str, str]:
    """(schema, name) of a possibly qualified name; unqualified names are in public."""
    if not parts:
        raise UnreadableError("expected a name")
    return (parts[-2] if len(parts) > 1 else "public"), parts[-1]


def relation_key(target: ast.RangeVar) -> tuple[str, str]:
    return str(target.schemaname or "public"), str(target.relname)


def is_temporary(target: ast.RangeVar) -> bool:
    """Session-local: not part of the schema."""
    return bool(target.relpersistence == "t")


def role_name(spec: ast.RoleSpec) -> str:
    keyword = _ROLE_KEYWORDS.get(spec.roletype)
    return keyword if keyword is not None else str(spec.rolename)


def option_on(options: object, name: str) -> bool | None:
    """A boolean reloption (`with (name = on)`, or bare `with (name)`), None when absent."""
    for option in options if isinstance(options, tuple) else ():
        if isinstance(option, ast.DefElem) and option.defname == name:
            value = option.arg
            if value is None:
                return True
            if isinstance(value, ast.Boolean):
                return bool(value.boolval)
            if isinstance(value, ast.Integer):
                return str(value.ival) in _TRUE
            if isinstance(value, ast.TypeName):  # a bare word: `= yes`
                return (names(value.names) or [""])[-1].lower() in _TRUE
            return str(getattr(value, "sval", value)).lower() in _TRUE
    return None


def deparse(node: ast.Node) -> str:
    """The node as SQL text, printed by pglast."""
    try:
        return str(RawStream()(node))
    except Exception as exc:  # pglast's printers raise whatever their node lacks
        raise UnreadableError(f"cannot print {type(node).__name__}: {exc}") from exc
