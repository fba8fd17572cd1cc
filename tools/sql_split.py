"""Split a SQL script into statements, the way psql would, so errors can name the statement.

Knows what can hide a semicolon: quoted strings (including E'' escapes), quoted identifiers,
dollar-quoted bodies, and both kinds of comment (block comments nest in PostgreSQL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line where the statement starts


class SqlSplitError(ValueError):
    pass


def split_sql(script: str) -> list[Statement]:
    statements: list[Statement] = []
    start = 0
    i = 0
    n = len(script)
    while i < n:
        ch = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and nxt == "*":
            i = _skip_block_comment(script, i)
        elif ch == "'":
            escapes = i > 0 and script[i - 1] in "eE" and not _is_word_char(script, i - 2)
            i = _skip_quoted(script, i, "'", backslash=escapes)
        elif ch == '"':
            i = _skip_quoted(script, i, '"', backslash=False)
        elif ch == "$" and not _is_word_char(script, i - 1):
            match = _DOLLAR_TAG.match(script, i)
            if match:
                tag = match.group(0)
                end = script.find(tag, match.end())
                if end < 0:
                    raise SqlSplitError(f"unterminated {tag} quote from line {_line(script, i)}")
                i = end + len(tag)
            else:
                i += 1
        elif ch == ";":
            _add(statements, script, start, i)
            i += 1
            start = i
        else:
            i += 1
    _add(statements, script, start, n)
    return statements


def _is_word_char(script: str, index: int) -> bool:
    return index >= 0 and (script[index].isalnum() or script[index] == "_")


def _line(script: str, index: int) -> int:
    return script.count("\n", 0, index) + 1


def _skip_block_comment(script: str, i: int) -> int:
    depth = 0
    n = len(script)
    while i < n:
        if script.startswith("/*", i):
            depth += 1
            i += 2
        elif script.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    raise SqlSplitError("unterminated /* comment")


def _skip_quoted(script: str, i: int, quote: str, *, backslash: bool) -> int:
    opened = i
    i += 1
    n = len(script)
    while i < n:
        ch = script[i]
        if backslash and ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and script[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    raise SqlSplitError(f"unterminated {quote} quote from line {_line(script, opened)}")


def _add(statements: list[Statement], script: str, start: int, end: int) -> None:
    code = _code_start(script, start)
    if code >= end:  # only white space and comments
        return
    statements.append(Statement(text=script[code:end].strip(), line=_line(script, code)))


def _code_start(script: str, i: int) -> int:
    """Where the first code after `i` is, past white space and comments."""
    while i < len(script):
        if script[i].isspace():
            i += 1
        elif script.startswith("--", i):
            end = script.find("\n", i)
            i = len(script) if end < 0 else end + 1
        elif script.startswith("/*", i):
            i = _skip_block_comment(script, i)
        else:
            break
    return i
