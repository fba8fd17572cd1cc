"""Column values as the database takes them: each column type's converter (refusing what
does not fit the column, e.g. an integer out of range), and exact sums for `add`."""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from projections.metadata import (
    NUMERIC_TYPES,
    Column,
    SqlFunction,
)

DOUBLE = "double precision"
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
# Decimal sums must be exact, like PostgreSQL's numeric.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class BadValueError(ValueError):
    pass


def _uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise BadValueError(f"{value!r} is not a UUID") from None
    raise BadValueError(f"expected a UUID, got {type(value).__name__}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise BadValueError(f"expected a str, got {type(value).__name__}")


def _integer(type_name: str) -> Callable[[Any], int]:
    low, high = _INT_RANGE[type_name]

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValueError(f"expected an int, got {type(value).__name__}")
        if not low <= value <= high:
            raise BadValueError(f"{value} is out of range for {type_name}")
        return int(value)

    return convert


def _numeric(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise BadValueError("expected a number, got bool")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # what PostgreSQL parses from the same text
    else:
        raise BadValueError(f"expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise BadValueError(f"{value!r} is not a finite number")
    return number


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise BadValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise BadValueError(f"expected a bool, got {type(value).__name__}")


def _timestamptz(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise BadValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise BadValueError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise BadValueError("a timestamptz needs a time zone")
    return value


def _date(value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise BadValueError(f"{value!r} is not an ISO 8601 date") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise BadValueError(f"expected a date, got {type(value).__name__}")
    return date(value.year, value.month, value.day)


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _jsonb(value: Any) -> str:
    try:
        return json.dumps(value, default=_json_default, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadValueError(f"not JSON: {exc}") from None


# Each column type has one Python type after conversion (a list of them is sent as one
# array parameter, which psycopg types by its elements).
CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "uuid": _uuid,
    "text": _text,
    "integer": _integer("integer"),
    "bigint": _integer("bigint"),
    "numeric": _numeric,
    "double precision": _double,
    "boolean": _boolean,
    "timestamptz": _timestamptz,
    "date": _date,
    "jsonb": _jsonb,
}


def plus(total: Any, delta: Any) -> Any:
    """SQL's `+` on normalised values: NULL stays NULL, numeric is exact."""
    if total is None or delta is None:
        return None
    if isinstance(total, Decimal) or isinstance(delta, Decimal):
        return _EXACT.add(Decimal(total), Decimal(delta))
    return total + delta


@dataclass(frozen=True)
class ColumnInfo:
    column: Column
    convert: Callable[[Any], Any]
    numeric: bool
    default_number: Any  # a numeric column's default as a value, for sums on the insert path

    @classmethod
    def of(cls, column: Column) -> ColumnInfo:
        numeric = column.type in NUMERIC_TYPES
        default: Any = None
        raw = column.default
        if numeric and raw is not None and not isinstance(raw, SqlFunction):
            exact = Decimal(int(raw)) if isinstance(raw, bool) else Decimal(str(raw))
            if column.type == "numeric":
                default = exact
            elif column.type == "double precision":
                default = float(exact)
            else:
                default = int(exact)
        return cls(column, CONVERTERS[column.type], numeric, default)
