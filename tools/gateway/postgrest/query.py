"""PostgREST's read syntax, the part the gateway serves, parsed without touching a database.

Served: `select=` (`*` or column names), filters `col=op.value` with eq, neq, gt, gte, lt,
lte, in.(a,b) and is.(null|true|false|unknown), `order=col[.asc|.desc][.nullsfirst|
.nullslast],...`, `limit=` and `offset=`. Everything else PostgREST can do (embedding,
renames, casts, JSON paths, `not.`, `or=`, pattern and full-text operators, ...) is refused
with a message naming it, rather than answered differently from the real thing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tools.gateway.errors import PostgrestError, bad_request

COMPARISONS: dict[str, str] = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<",
                               "lte": "<="}
IS_VALUES = frozenset({"null", "true", "false", "unknown"})
# PostgREST operators the gateway knows but does not serve, named in the refusal.
KNOWN_UNSUPPORTED = frozenset({
    "like", "ilike", "match", "imatch", "fts", "plfts", "phfts", "wfts", "cs", "cd", "ov",
    "sl", "sr", "nxr", "nxl", "adj", "isdistinct", "not", "any", "all",
})
RESERVED = frozenset({"select", "order", "limit", "offset"})
WRITE_PARAMETERS = frozenset({"columns", "on_conflict"})
LOGICAL = frozenset({"or", "and", "not.or", "not.and"})
# Credentials the API gateway accepts in the query string; never filters.
CREDENTIALS = frozenset({"apikey"})
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
# limit= and offset=: ASCII digits only (str.isdigit() and \d also take '²' or '٣'), and
# few enough that int() never refuses them (it refuses more than 4300).
_DIGITS = re.compile(r"[0-9]{1,19}")
BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Filter:
    column: str
    operator: str  # one of COMPARISONS, "in" or "is"
    value: str | tuple[str, ...]


@dataclass(frozen=True)
class OrderTerm:
    column: str
    descending: bool = False
    nulls: Literal["first", "last"] | None = None


@dataclass(frozen=True)
class ReadQuery:
    columns: tuple[str, ...] | None = None  # None: every column (`*`)
    filters: tuple[Filter, ...] = ()
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int | None = None

    def column_names(self) -> set[str]:
        """Every column the query names, to be checked against the table's."""
        names = set(self.columns or ())
        names.update(f.column for f in self.filters)
        names.update(o.column for o in self.order)
        return names


def unsupported(what: str, detail: str | None = None) -> PostgrestError:
    return bad_request(
        f"{what} is not supported by the local gateway",
        details=detail,
        hint="The local gateway serves select=, eq/neq/gt/gte/lt/lte/in/is filters, "
             "order=, limit= and offset=.",
    )


def _unquote(token: str) -> str:
    """A name as PostgREST reads it: `"a b"` (with \\ escapes) or a bare name."""
    if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside double quotes and parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
            continue
        if char == "\\" and quoted:
            current.append(char)
            escaped = True
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and not quoted and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise bad_request(f"unterminated double quote in {text!r}")
    parts.append("".join(current))
    return parts


def parse_column(token: str, *, where: str) -> str:
    """One column name; anything that is more than a name is refused, naming the feature."""
    token = token.strip()
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        name = _unquote(token)
        if not name:
            raise bad_request(f"empty column name in {where}")
        return name
    if not token:
        raise bad_request(f"empty column name in {where}")
    if token.startswith("..."):
        raise unsupported(f"spread ({token!r} in {where})")
    if "->" in token:
        raise unsupported(f"JSON path ({token!r} in {where})")
    if "::" in token:
        raise unsupported(f"cast ({token!r} in {where})")
    if "(" in token or "!" in token:
        raise unsupported(f"embedded resource or aggregate ({token!r} in {where})")
    if ":" in token:
        raise unsupported(f"renaming a column ({token!r} in {where})")
    if "." in token:
        raise unsupported(f"a column of an embedded resource ({token!r} in {where})")
    if not _PLAIN_NAME.match(token):
        raise bad_request(f"{token!r} in {where} is not a column name",
                          hint="Quote unusual names with double quotes.")
    return token


def parse_select(value: str) -> tuple[str, ...] | None:
    value = value.strip()
    if value in {"", "*"}:
        return None
    columns: list[str] = []
    for item in _split_top_level(value):
        if item.strip() == "*":
            raise unsupported("'*' beside other columns in select")
        columns.append(parse_column(item, where="select"))
    return tuple(columns)


def parse_in_list(value: str) -> tuple[str, ...]:
    if not (value.startswith("(") and value.endswith(")")):
        raise bad_request(f"in. needs a parenthesised list, e.g. in.(a,b); got {value!r}")
    inner = value[1:-1]
    if inner == "":
        return ()
    return tuple(_unquote(item) for item in _split_top_level(inner))


def parse_filter(column_token: str, expression: str) -> Filter:
    column = parse_column(column_token, where="a filter")
    operator, dot, value = expression.partition(".")
    if not dot:
        raise bad_request(f"failed to parse filter ({column_token}={expression})",
                          hint="Filters look like column=operator.value, e.g. sku=eq.A-1.")
    if operator == "not":
        raise unsupported(f"negation ('not.' in {column_token}={expression})")
    if operator in COMPARISONS:
        return Filter(column, operator, value)
    if operator == "in":
        return Filter(column, "in", parse_in_list(value))
    if operator == "is":
        lowered = value.lower()
        if lowered not in IS_VALUES:
            raise bad_request(f"is. takes null, true, false or unknown; got {value!r}")
        return Filter(column, "is", lowered)
    base = operator.split("(", 1)[0]
    if base in KNOWN_UNSUPPORTED or base in COMPARISONS:
        raise unsupported(f"operator {operator!r} ({column_token}={expression})")
    raise bad_request(f"unknown operator {operator!r} in filter {column_token}={expression}")


def _leading_quoted(item: str) -> tuple[str, str]:
    """Split `"quoted name"rest` after the closing quote (backslash escapes allowed)."""
    index = 1
    while index < len(item):
        if item[index] == "\\":
            index += 2
            continue
        if item[index] == '"':
            return item[: index + 1], item[index + 1:]
        index += 1
    raise bad_request(f"unterminated double quote in order term {item!r}")


def parse_order(value: str) -> tuple[OrderTerm, ...]:
    terms: list[OrderTerm] = []
    for item in _split_top_level(value):
        item = item.strip()
        if item.startswith('"'):
            column_token, rest = _leading_quoted(item)
            if rest and not rest.startswith("."):
                raise bad_request(f"failed to parse order term {item!r}")
            modifiers = rest.split(".")[1:]
        else:
            column_token, *modifiers = item.split(".")
        column = parse_column(column_token, where="order")
        descending = False
        nulls: Literal["first", "last"] | None = None
        seen_direction = seen_nulls = False
        for modifier in modifiers:
            if modifier in {"asc", "desc"} and not seen_direction and not seen_nulls:
                descending = modifier == "desc"
                seen_direction = True
            elif modifier in {"nullsfirst", "nullslast"} and not seen_nulls:
                nulls = "first" if modifier == "nullsfirst" else "last"
                seen_nulls = True
            else:
                raise bad_request(
                    f"failed to parse order term {item!r}: unexpected {modifier!r}",
                    hint="Order terms look like column.asc|desc[.nullsfirst|.nullslast].",
                )
        terms.append(OrderTerm(column, descending, nulls))
    return tuple(terms)


def _non_negative(name: str, value: str) -> int:
    """ASCII digits only (str.isdigit() takes '²', which int() refuses), at most a bigint,
    as the page is a `limit`/`offset` of PostgreSQL."""
    if not _DIGITS.fullmatch(value) or int(value) > BIGINT_MAX:
        raise bad_request(f"{name}={value[:40]!r} is not a non-negative integer",
                          details=f"{name} takes 0 to {BIGINT_MAX} in ASCII digits")
    return int(value)


def parse_read_query(params: Iterable[tuple[str, str]]) -> ReadQuery:
    """The read a query string asks for, or a PostgrestError (400) naming what is not
    served. Several filters are ANDed, as PostgREST does."""
    columns: tuple[str, ...] | None = None
    filters: list[Filter] = []
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int | None = None
    seen: set[str] = set()
    for key, value in params:
        if key in CREDENTIALS:
            continue
        if key in RESERVED:
            if key in seen:
                raise bad_request(f"{key}= is given more than once")
            seen.add(key)
            if key == "select":
                columns = parse_select(value)
            elif key == "order":
                order = parse_order(value)
            elif key == "limit":
                limit = _non_negative("limit", value)
            else:
                offset = _non_negative("offset", value)
        elif key in WRITE_PARAMETERS:
            raise unsupported(f"the {key}= parameter")
        elif key in LOGICAL:
            raise unsupported(f"logical operator {key}=")
        elif key.endswith((".order", ".limit", ".offset", ".or", ".and", ".select")):
            raise unsupported(f"{key}= on an embedded resource")
        else:
            filters.append(parse_filter(key, value))
    return ReadQuery(columns, tuple(filters), order, limit, offset)
