"""What a policy condition does, read from PostgreSQL's parse tree: whether it names the
tenant_id column, which functions it calls, whether it reads user_metadata.

Conditions come as text (pg_get_expr's in live mode, the deparsed USING / WITH CHECK in SQL
mode), so both modes are judged by the same code.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from pglast import ast, parse_sql, parser

from tools.checks.rls.model import TENANT_COLUMN
from tools.checks.rls.tree import names, walk

_USER_METADATA = re.compile(r"user_?meta_?data")
_ESCAPES = re.compile(r"\\(?:u|\+)?([0-9a-f]{4,6})|\\x([0-9a-f]{2})")
_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_GLUE = frozenset({"||", "(", ")"})  # what may stand between the pieces of a spelling


@lru_cache(maxsize=4096)
def expression(text: str) -> ast.Node | None:
    """The parse tree of a condition, or None when it is not one expression."""
    try:
        statements = parse_sql(f"SELECT (\n{text}\n)")
    except parser.ParseError:
        return None
    if len(statements) != 1:
        return None
    select = statements[0].stmt
    targets: tuple[Any, ...] = getattr(select, "targetList", None) or ()
    if not isinstance(select, ast.SelectStmt) or len(targets) != 1 or select.fromClause:
        return None
    value = targets[0].val
    return value if isinstance(value, ast.Node) else None


def tree_references_tenant(node: object) -> bool:
    """Whether a column reference named tenant_id (qualified or not) is in the tree."""
    for found in walk(node):
        if isinstance(found, ast.ColumnRef):
            last = found.fields[-1] if found.fields else None
            if isinstance(last, ast.String) and last.sval == TENANT_COLUMN:
                return True
    return False


def tree_calls(node: object) -> tuple[str, ...]:
    """The functions a tree calls: "schema.name" when qualified, else "name"; in order."""
    called: list[str] = []
    for found in walk(node):
        if isinstance(found, ast.FuncCall):
            parts = names(found.funcname)
            if parts:
                called.append(".".join(parts[-2:]))
    return tuple(dict.fromkeys(called))


def references_tenant(condition: str | None) -> bool:
    """Whether the condition names the tenant_id column (not merely the claim's text)."""
    if not condition:
        return False
    tree = expression(condition)
    if tree is None:
        return TENANT_COLUMN in condition.lower()
    return tree_references_tenant(tree)


def called_functions(condition: str | None) -> tuple[str, ...]:
    """The functions a condition calls: "schema.name" when qualified, else "name"."""
    if not condition:
        return ()
    tree = expression(condition)
    return () if tree is None else tree_calls(tree)


def reads_user_metadata(text: str | None) -> bool:
    """Any spelling: raw_user_meta_data, 'user_metadata', "user_metadata", split across
    concatenated literals (parenthesised, as printed conditions are, or with comments
    between), or with escapes in the literal."""
    if not text:
        return False
    lowered = text.lower()
    if _USER_METADATA.search(lowered):
        return True
    decoded = _ESCAPES.sub(_unescape, lowered)
    squeezed = re.sub(r"\|\||['\"\s()]|::\w+", "", decoded)
    if _USER_METADATA.search(squeezed):
        return True
    try:
        tokens = parser.scan(text)
    except parser.ParseError:
        return False
    spelled = (text[t.start : t.end + 1] for t in tokens if t.name not in _COMMENTS)
    joined = re.sub(r"['\"]", "", "".join(s for s in spelled if s not in _GLUE).lower())
    return bool(_USER_METADATA.search(_ESCAPES.sub(_unescape, joined)))


def _unescape(match: re.Match[str]) -> str:
    return chr(int(match.group(1) or match.group(2), 16))
