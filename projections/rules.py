"""Declared handlers: a projection's event-to-row mapping as data instead of code.

A handler written as Python can only be run by Python, event by event. The same mapping
written as rules (`On(event, table, key=..., set=..., add=...)`) is still a handler (calling
it gives the same ops), and it can also be compiled to SQL (projections.set_fold), so that a
rebuild folds a whole range of the feed inside PostgreSQL instead of shipping every event to
Python and back: the difference between ~15,000 and well over 40,000 events/s.

A value is a payload field (`payload("quantity")`), a fact of the event (`OCCURRED_AT`,
`AGGREGATE_ID`), a constant (`literal(...)`), or the negation of a number (`neg(...)`).

`check` compares the rules with the projection's tables and the registry's payload models
when the catalog is built, so a rule that names an unknown column or field, adds to a
non-number, or could put a null where none may go, fails at start-up, not in the middle of
a feed. Those checks are also what makes the compiled SQL give the same rows as the Python
path for every payload the model accepts (tests/integration/test_projection_set_fold.py
compares the two).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.contracts import Event
from projections.metadata import (
    GUARD_COLUMNS,
    NUMERIC_TYPES,
    TENANT_COLUMN,
    ColumnType,
    Delete,
    Identifier,
    Op,
    Projection,
    Upsert,
)


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PayloadField(_Value):
    """A top-level field of the event's (current-version) payload."""

    kind: Literal["payload"] = "payload"
    name: Identifier


class EventFact(_Value):
    """Something every stored event has, whatever its payload."""

    kind: Literal["event"] = "event"
    name: Literal["occurred_at", "aggregate_id"]


class Constant(_Value):
    kind: Literal["constant"] = "constant"
    value: bool | int | str | None


class Negated(_Value):
    kind: Literal["negated"] = "negated"
    of: Value


Term = PayloadField | EventFact | Constant | Negated  # a value, as code handles it
Value = Annotated[Term, Field(discriminator="kind")]  # the same, as pydantic validates it
Negated.model_rebuild()

OCCURRED_AT = EventFact(name="occurred_at")
AGGREGATE_ID = EventFact(name="aggregate_id")


def payload(name: str) -> PayloadField:
    return PayloadField(name=name)


def literal(value: bool | int | str | None) -> Constant:
    return Constant(value=value)


def neg(value: Term) -> Negated:
    return Negated(of=value)


class On(_Value):
    """When `event` happens: upsert (or, with `delete=True`, delete) the row of `table` that
    `key` names (the primary key without tenant_id, which comes from the event's stream)."""

    event: str
    table: Identifier
    key: Mapping[Identifier, Value] = Field(min_length=1)
    set: Mapping[Identifier, Value] = Field(default_factory=dict)
    add: Mapping[Identifier, Value] = Field(default_factory=dict)
    delete: bool = False

    def __init__(self, event: str, table: str, /, **rest: Any) -> None:
        super().__init__(**{"event": event, "table": table, **rest})

    def op(self, event: Event, body: BaseModel) -> Op:
        key = {name: _evaluate(value, event, body) for name, value in self.key.items()}
        if self.delete:
            return Delete(table=self.table, key=key)
        return Upsert(
            table=self.table,
            key=key,
            set={name: _evaluate(value, event, body) for name, value in self.set.items()},
            add={name: _evaluate(value, event, body) for name, value in self.add.items()},
        )


def _evaluate(value: Term, event: Event, body: BaseModel) -> Any:
    match value:
        case PayloadField(name=name):
            return getattr(body, name)
        case EventFact(name="occurred_at"):
            return event.metadata.occurred_at
        case EventFact():
            return event.stream.aggregate_id
        case Constant(value=constant):
            return constant
        case Negated(of=inner):
            found = _evaluate(inner, event, body)
            return None if found is None else -found
    raise AssertionError(f"unknown value {value!r}")


class RulesError(ValueError):
    """Rules that do not fit their projection's tables or their events' payload models."""


class Rules:
    """A handler made of `On` rules. Calling it gives each rule's op for the event, in the
    order the rules were declared (an event's later op on a row wins over an earlier one,
    as in any handler)."""

    def __init__(self, *rules: On) -> None:
        if not rules:
            raise RulesError("Rules needs at least one On(...)")
        self.rules = tuple(rules)
        self._by_event: dict[str, tuple[On, ...]] = {}
        for rule in rules:
            self._by_event[rule.event] = (*self._by_event.get(rule.event, ()), rule)

    def __call__(self, event: Event, body: BaseModel) -> Sequence[Op]:
        return [rule.op(event, body) for rule in self._by_event.get(event.event_type, ())]

    def __repr__(self) -> str:
        return f"Rules({len(self.rules)} rules on {sorted(self._by_event)})"

    @property
    def events(self) -> frozenset[str]:
        return frozenset(self._by_event)

    @property
    def declared_reads(self) -> tuple[str, ...]:
        """The event types the rules name, in the order they first appear: what a
        projection declared with these rules reads when it does not say."""
        return tuple(self._by_event)

    def check(self, projection: Projection, models: Mapping[str, type[BaseModel]]) -> None:
        """Refuse rules that could not run as declared. `models`: each event type's current
        payload model."""
        unread = sorted(self.events - set(projection.reads))
        if unread:
            raise RulesError(f"projection {projection.name}: rules for events it does not "
                             f"read: {unread} (add them to `reads`)")
        for index, rule in enumerate(self.rules, 1):
            where = f"projection {projection.name}, rule {index} ({rule.event} -> {rule.table})"
            try:
                _check_rule(rule, projection, models[rule.event])
            except KeyError as exc:
                raise RulesError(f"{where}: no payload model for {exc}") from None
            except RulesError as exc:
                raise RulesError(f"{where}: {exc}") from None


def _check_rule(rule: On, projection: Projection, model: type[BaseModel]) -> None:
    tables = {t.name: t for t in projection.tables}
    table = tables.get(rule.table)
    if table is None:
        raise RulesError(f"no table {rule.table!r} (tables: {sorted(tables)})")
    columns = {c.name: c for c in table.columns}
    wanted = set(table.primary_key[1:])
    if TENANT_COLUMN in rule.key:
        raise RulesError("tenant_id comes from the event's stream, never from a rule")
    if set(rule.key) != wanted:
        raise RulesError(f"the key must name exactly {sorted(wanted)}, not {sorted(rule.key)}")
    if rule.delete and (rule.set or rule.add):
        raise RulesError("a delete rule neither sets nor adds")
    both = sorted(set(rule.set) & set(rule.add))
    if both:
        raise RulesError(f"{both[0]!r} is both set and added")
    for name, value in [*rule.key.items(), *rule.set.items(), *rule.add.items()]:
        column = columns.get(name)
        if column is None or name in GUARD_COLUMNS:
            raise RulesError(f"{name!r} is not a column of {table.name}")
        if name in rule.set and name in table.primary_key:
            raise RulesError(f"{name!r} is part of the key; give it in `key`")
        adding = name in rule.add
        if adding and column.type not in NUMERIC_TYPES:
            raise RulesError(f"cannot add to {name} ({column.type}), only to a number")
        accepts, nullable = _value_type(value, model)
        if column.type not in accepts:
            raise RulesError(
                f"{name} ({column.type}) cannot take {_describe(value)}, which is "
                f"{'/'.join(sorted(accepts)) or 'not a column value'}"
            )
        if nullable and (adding or name in rule.key or not column.nullable):
            raise RulesError(f"{_describe(value)} may be null, and {name} may not")


def _describe(value: Term) -> str:
    match value:
        case PayloadField(name=name):
            return f"payload field {name!r}"
        case EventFact(name=name):
            return f"the event's {name}"
        case Constant(value=constant):
            return f"the constant {constant!r}"
        case Negated(of=inner):
            return f"minus {_describe(inner)}"
    raise AssertionError(value)


# Which column types a Python value of each payload type goes into without loss, as the
# applier converts it (projections.apply's converters) and as SQL casts it from JSON text.
_ACCEPTS: list[tuple[type, frozenset[ColumnType]]] = [
    (bool, frozenset({"boolean"})),
    (int, frozenset({"integer", "bigint", "numeric", "double precision"})),
    (float, frozenset({"numeric", "double precision"})),
    (Decimal, frozenset({"numeric", "double precision"})),
    (UUID, frozenset({"uuid"})),
    (datetime, frozenset({"timestamptz"})),
    (date, frozenset({"date"})),
    (str, frozenset({"text"})),
]


def _value_type(value: Term, model: type[BaseModel]) -> tuple[frozenset[ColumnType], bool]:
    """(column types the value fits, whether it may be null)."""
    match value:
        case EventFact(name="occurred_at"):
            return frozenset({"timestamptz"}), False
        case EventFact():
            return frozenset({"uuid"}), False
        case Constant(value=None):
            return frozenset(typing.get_args(ColumnType)), True
        case Constant(value=constant):
            return _accepts(type(constant)), False
        case Negated(of=inner):
            accepts, nullable = _value_type(inner, model)
            return accepts & NUMERIC_TYPES, nullable
        case PayloadField(name=name):
            field = model.model_fields.get(name)
            if field is None:
                raise RulesError(f"{model.__name__} has no field {name!r}")
            if not field.is_required() and not _plain_default(field.default):
                raise RulesError(
                    f"{model.__name__}.{name}'s default is not a plain constant, so SQL "
                    "could not fill it in for a payload stored without it"
                )
            return _annotation_type(field.annotation)
    raise AssertionError(value)


def _plain_default(default: Any) -> bool:
    return default is None or type(default) in (bool, int, float, str)


def _accepts(kind: type) -> frozenset[ColumnType]:
    if issubclass(kind, Enum):
        return frozenset({"text"}) if issubclass(kind, str) else frozenset()
    if issubclass(kind, BaseModel):
        return frozenset({"jsonb"})
    for python, columns in _ACCEPTS:
        if issubclass(kind, python):
            return columns
    return frozenset()


def _annotation_type(annotation: Any) -> tuple[frozenset[ColumnType], bool]:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _annotation_type(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        parts = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(parts) < len(typing.get_args(annotation))
        found: frozenset[ColumnType] | None = None
        for part in parts:
            accepts, inner_null = _annotation_type(part)
            nullable = nullable or inner_null
            found = accepts if found is None else found & accepts
        return found or frozenset(), nullable
    if origin is Literal:
        values = typing.get_args(annotation)
        kinds = {type(v) for v in values if v is not None}
        nullable = None in values
        found = frozenset(typing.get_args(ColumnType))
        for kind in kinds:
            found &= _accepts(kind)
        return found, nullable
    if origin in (dict, list, tuple) or annotation in (dict, list):
        return frozenset({"jsonb"}), False
    if isinstance(annotation, type):
        return _accepts(annotation), False
    return frozenset(), False
