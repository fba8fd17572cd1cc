"""Handler ops become SQL: one page of events, one MERGE per table, inside the caller's
transaction.

Why it is shaped this way:

- The handler is pure Python; it never sees tenant_id or the feed position. The applier adds
  `tenant_id` from the event's stream (a key naming tenant_id is refused, so a projection can
  never write another tenant's rows) and `event_txid` / `event_position` from the event.
- Every write is guarded by the row's feed position: a row is changed only by an event newer
  than the last one applied to it, so an older event never overwrites a newer one and a
  replayed event is a no-op (`add` counters included).
- Speed: the ops of a page are folded in Python into at most one write per row wherever that
  is exactly what applying them one by one would give, and each table's rows go to the
  database as arrays in one MERGE (so a page of any size is one round trip per table).
  An event's ops on one row act as one change under one guard. The one fold across events
  that is not exact, adding again to a `double precision` column that an earlier event of
  the page added to (floating-point addition is not associative), starts a second write to
  that row instead (a "generation"); one event adding twice to the same double column of a
  row is refused, since the order of its two sums would be a guess.
- A fold is guarded by the position of its first event (its last event's position is
  written). In order, which is how the runner, a rebuild and inline application all feed the
  applier, the guard then gives exactly what event-by-event application gives. A row newer
  than a page's first event but older than its last cannot arise in those paths; such a row
  would be left as it is.
- `strict=True` (inline application) turns a guarded-off write into `StaleWriteError`: inside
  the worker's transaction a row newer than the events being appended means another
  transaction with a later id wrote first, and silently dropping this one would lose an
  update. Raising rolls the batch back; its retry runs with a new, later transaction id.

Names reach SQL only through `psycopg.sql.Identifier`; types and defaults are rendered from the
validated metadata by projections.sql (sqlglot).
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from pydantic import BaseModel

from domain.contracts import Event
from domain.registry import Registry
from projections.metadata import (
    GUARD_COLUMNS,
    NUMERIC_TYPES,
    TENANT_COLUMN,
    Column,
    Delete,
    Projection,
    SqlFunction,
    Table,
    Upsert,
)
from projections.sql import default_sql, type_sql
from pump.database import Conn

DOUBLE = "double precision"
SET, ADD = 1, 2  # how a folded write changes a column of an existing row (0: not at all)
Position = tuple[int, int]  # (transaction id, position): a feed position, ordered like the feed
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
# Decimal sums must be exact, like PostgreSQL's numeric.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


# -- errors --------------------------------------------------------------------------------


class ProjectionError(Exception):
    """A projection could not apply an event. Carries what an operator needs to find it."""

    kind = "projection_error"

    def __init__(
        self,
        message: str,
        *,
        projection: str,
        event: Event | None = None,
        table: str | None = None,
        column: str | None = None,
    ) -> None:
        where = f"projection {projection}"
        if event is not None:
            where += (
                f", event {event.event_id} ({event.event_type} at "
                f"{event.transaction_id}:{event.position})"
            )
        super().__init__(f"{where}: {message}")
        self.message = message
        self.projection = projection
        self.event = event
        self.table = table
        self.column = column

    def as_json(self) -> dict[str, Any]:
        """For intent.checkpoints.error."""
        event = self.event
        return {
            "kind": self.kind,
            "message": str(self),
            "projection": self.projection,
            "event_id": str(event.event_id) if event else None,
            "event_type": event.event_type if event else None,
            "transaction_id": event.transaction_id if event else None,
            "position": event.position if event else None,
            "table": self.table,
            "column": self.column,
        }


class HandlerError(ProjectionError):
    """The handler raised, or the event's payload could not be loaded for it."""

    kind = "handler_failed"


class InvalidOpError(ProjectionError):
    """An op does not fit the projection's tables (unknown table or column, a bad value)."""

    kind = "invalid_op"


class WriteError(ProjectionError):
    """The database refused a page's writes (a NOT NULL column never set, an overflow...)."""

    kind = "write_failed"


class StaleWriteError(ProjectionError):
    """Strict mode: a row already holds a newer event than the one being applied."""

    kind = "stale_write"


# -- column values ---------------------------------------------------------------------------


class _BadValueError(ValueError):
    pass


def _uuid(value: Any) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise _BadValueError(f"{value!r} is not a UUID") from None
    raise _BadValueError(f"expected a UUID, got {type(value).__name__}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _BadValueError(f"expected a str, got {type(value).__name__}")


def _integer(type_name: str) -> Callable[[Any], int]:
    low, high = _INT_RANGE[type_name]

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadValueError(f"expected an int, got {type(value).__name__}")
        if not low <= value <= high:
            raise _BadValueError(f"{value} is out of range for {type_name}")
        return int(value)

    return convert


def _numeric(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise _BadValueError("expected a number, got bool")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # what PostgreSQL parses from the same text
    else:
        raise _BadValueError(f"expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise _BadValueError(f"{value!r} is not a finite number")
    return number


def _double(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _BadValueError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _BadValueError(f"expected a bool, got {type(value).__name__}")


def _timestamptz(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise _BadValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise _BadValueError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise _BadValueError("a timestamptz needs a time zone")
    return value


def _date(value: Any) -> date:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _BadValueError(f"{value!r} is not an ISO 8601 date") from None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _BadValueError(f"expected a date, got {type(value).__name__}")
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
        raise _BadValueError(f"not JSON: {exc}") from None


# Each column type has one Python type after conversion (a list of them is sent as one
# array parameter, which psycopg types by its elements).
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
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


def _plus(total: Any, delta: Any) -> Any:
    """SQL's `+` on normalised values: NULL stays NULL, numeric is exact."""
    if total is None or delta is None:
        return None
    if isinstance(total, Decimal) or isinstance(delta, Decimal):
        return _EXACT.add(Decimal(total), Decimal(delta))
    return total + delta


@dataclass(frozen=True)
class _ColumnInfo:
    column: Column
    convert: Callable[[Any], Any]
    numeric: bool
    default_number: Any  # a numeric column's default as a value, for sums on the insert path

    @classmethod
    def of(cls, column: Column) -> _ColumnInfo:
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
        return cls(column, _CONVERTERS[column.type], numeric, default)


# -- folding ------------------------------------------------------------------------------


@dataclass(slots=True)
class RowWrite:
    """Everything one page does to one row, as one guarded write.

    `delete_at`: the last Delete of the row in the page (None: none). `tail`: whether upserts
    follow it. For the tail: `modes` says how each touched column changes an existing row
    (SET or ADD), `delta` holds the ADD amounts, `insert` the values a fresh row gets;
    `first` / `last` are the positions of the tail's first and last events.
    """

    key: tuple[Any, ...]  # tenant_id then the rest of the primary key, normalised
    first: Position
    last: Position
    delete_at: Position | None = None
    tail: bool = False
    modes: dict[str, int] = field(default_factory=dict)
    delta: dict[str, Any] = field(default_factory=dict)
    insert: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableWrite:
    """One statement's worth: the rows of one table in one generation."""

    table: Table
    physical: str
    generation: int
    upserts: list[RowWrite]
    deletes: list[RowWrite]


@dataclass
class WritePlan:
    events: int  # events given
    handled: int  # events the projection reads (the handler saw them)
    ops: int
    writes: list[TableWrite]

    @property
    def rows(self) -> int:
        return sum(len(w.upserts) + len(w.deletes) for w in self.writes)


@dataclass
class ApplyResult:
    events: int
    handled: int
    ops: int
    rows: int  # folded row writes sent
    written: int  # rows inserted, updated or deleted
    skipped: int  # rows left alone because they already held a newer event
    statements: int


class TableTarget:
    """A table's compiled metadata and its two statements (upsert, delete): what a write
    to it needs, whichever table (live or twin) it writes."""

    def __init__(self, projection: Projection, table: Table, physical: str) -> None:
        self.table = table
        self.physical = physical
        self.key_columns = tuple(table.column(name) for name in table.primary_key)
        self.key_names = frozenset(table.primary_key[1:])
        self.values = tuple(_ColumnInfo.of(c) for c in table.value_columns)
        self.by_name = {info.column.name: info for info in self.values}
        self.key_convert = tuple(_CONVERTERS[c.type] for c in self.key_columns[1:])
        self.key_parts = tuple(
            (c.name, convert) for c, convert in zip(self.key_columns[1:], self.key_convert,
                                                    strict=True)
        )
        self.doubles = frozenset(i.column.name for i in self.values if i.column.type == DOUBLE)
        # Rendered once: composing the statement on every page would cost more than running it.
        arrays, aliases = self._arrays()
        source = sql.SQL("select * from unnest({}) as s({})").format(
            sql.SQL(", ").join(arrays), sql.SQL(", ").join(aliases))
        self.merge = self.merge_sql(projection.schema_name, source).as_string(None).encode()
        self.delete = self._delete_sql(projection.schema_name).as_string(None).encode()

    def _target(self, schema: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(self.physical))

    def _keys_unnest(self) -> tuple[list[sql.Composable], list[sql.Composable], sql.Composable]:
        arrays: list[sql.Composable] = []
        aliases: list[sql.Composable] = []
        match: list[sql.Composable] = []
        for i, column in enumerate(self.key_columns):
            arrays.append(sql.SQL("%b::{}[]").format(sql.SQL(type_sql(column.type))))
            aliases.append(sql.Identifier(f"k{i}"))
            match.append(
                sql.SQL("t.{} = s.{}").format(sql.Identifier(column.name), sql.Identifier(f"k{i}"))
            )
        return arrays, aliases, sql.SQL(" and ").join(match)

    def _arrays(self) -> tuple[list[sql.Composable], list[sql.Composable]]:
        """The MERGE's source as array parameters: one array per source column, by name."""
        arrays, aliases, _match = self._keys_unnest()
        for alias in ("del_txid", "del_pos", "first_txid", "first_pos", "last_txid", "last_pos"):
            arrays.append(sql.SQL("%b::bigint[]"))
            aliases.append(sql.Identifier(alias))
        for i, info in enumerate(self.values):
            type_ = sql.SQL(type_sql(info.column.type))
            arrays += [sql.SQL("%b::smallint[]"), sql.SQL("%b::{}[]").format(type_)]
            aliases += [sql.Identifier(f"m{i}"), sql.Identifier(f"i{i}")]
            if info.numeric:
                arrays.append(sql.SQL("%b::{}[]").format(type_))
                aliases.append(sql.Identifier(f"d{i}"))
        return arrays, aliases

    def merge_sql(self, schema: str, source: sql.Composable) -> sql.Composed:
        """The guarded MERGE of folded row writes from `source`, a query with the columns
        `_arrays` names: k<i> (the key), del/first/last positions, and per value column
        m<i> (0, SET or ADD), i<i> (a fresh row's value) and, for numbers, d<i> (the sum
        an existing row adds). The Python fold sends them as arrays; projections.set_fold
        computes them in SQL."""
        _arrays, _aliases, match = self._keys_unnest()
        inserts: list[sql.Composable] = []
        updates: list[sql.Composable] = []
        for i, info in enumerate(self.values):
            column = info.column
            type_ = sql.SQL(type_sql(column.type))
            mode, value, delta = (sql.Identifier(f"{p}{i}") for p in ("m", "i", "d"))
            default = default_sql(column)
            fallback = (
                sql.SQL("({})::{}").format(sql.SQL(default), type_)
                if default is not None
                else sql.SQL("null::{}").format(type_)
            )
            # A column no row of the page touches comes as a null array (`unnest` pads it
            # with nulls), hence `> 0` rather than `<> 0`.
            inserts.append(
                sql.SQL("case when s.{m} > 0 then s.{i} else {fallback} end").format(
                    m=mode, fallback=fallback, i=value
                )
            )
            name = sql.Identifier(column.name)
            if info.numeric:
                updates.append(
                    sql.SQL(
                        "case s.{m} when {set} then s.{i} when {add} then t.{c} + s.{d} "
                        "else t.{c} end"
                    ).format(m=mode, set=sql.Literal(SET), add=sql.Literal(ADD), i=value,
                             c=name, d=delta)
                )
            else:
                updates.append(
                    sql.SQL("case s.{m} when {set} then s.{i} else t.{c} end").format(
                        m=mode, set=sql.Literal(SET), i=value, c=name
                    )
                )
        names = [sql.Identifier(c.name) for c in self.values_columns()]
        guard = [sql.Identifier(g) for g in GUARD_COLUMNS]
        stamp = sql.SQL("{} = s.last_txid, {} = s.last_pos").format(*guard)

        def assignments(expressions: list[sql.Composable]) -> sql.Composable:
            pairs = [
                sql.SQL("{} = {}").format(n, e) for n, e in zip(names, expressions, strict=True)
            ]
            return sql.SQL(", ").join([*pairs, stamp])

        return sql.SQL(
            "merge into {target} as t using ({source}) as s on {match} "
            # Deleted earlier in the page and upserted again: the row starts over.
            "when matched and s.del_txid is not null "
            "and (t.{gt}, t.{gp}) < (s.del_txid, s.del_pos) then update set {replace} "
            "when matched and (t.{gt}, t.{gp}) < (s.first_txid, s.first_pos) "
            "then update set {update} "
            "when not matched then insert ({columns}) values ({keys}, {inserts}, "
            "s.last_txid, s.last_pos)"
        ).format(
            target=self._target(schema),
            source=source,
            match=match,
            gt=guard[0],
            gp=guard[1],
            replace=assignments(inserts),
            update=assignments(updates),
            columns=sql.SQL(", ").join(
                [*(sql.Identifier(c.name) for c in self.key_columns), *names, *guard]
            ),
            keys=sql.SQL(", ").join(
                sql.SQL("s.{}").format(sql.Identifier(f"k{i}"))
                for i in range(len(self.key_columns))
            ),
            inserts=sql.SQL(", ").join(inserts),
        )

    def _delete_sql(self, schema: str) -> sql.Composed:
        arrays, aliases, match = self._keys_unnest()
        arrays += [sql.SQL("%b::bigint[]"), sql.SQL("%b::bigint[]")]
        aliases += [sql.Identifier("txid"), sql.Identifier("pos")]
        guard = [sql.Identifier(g) for g in GUARD_COLUMNS]
        # The second count reads the snapshot from before the delete: rows that stay
        # because they hold a newer event (what strict mode must know about).
        return sql.SQL(
            "with s as (select * from unnest({arrays}) as s({aliases})), "
            "d as (delete from {target} as t using s where {match} "
            "and (t.{gt}, t.{gp}) < (s.txid, s.pos) returning 1) "
            "select (select count(*) from d), (select count(*) from {target} as t join s "
            "on {match} where (t.{gt}, t.{gp}) >= (s.txid, s.pos))"
        ).format(
            arrays=sql.SQL(", ").join(arrays),
            aliases=sql.SQL(", ").join(aliases),
            target=self._target(schema),
            match=match,
            gt=guard[0],
            gp=guard[1],
        )

    def values_columns(self) -> tuple[Column, ...]:
        return tuple(info.column for info in self.values)

    def merge_params(self, rows: Sequence[RowWrite]) -> list[list[Any] | None]:
        params: list[list[Any] | None] = [
            [r.key[i] for r in rows] for i in range(len(self.key_columns))
        ]
        deletes = any(r.delete_at for r in rows)
        params += [
            [r.delete_at[0] if r.delete_at else None for r in rows] if deletes else None,
            [r.delete_at[1] if r.delete_at else None for r in rows] if deletes else None,
            [r.first[0] for r in rows],
            [r.first[1] for r in rows],
            [r.last[0] for r in rows],
            [r.last[1] for r in rows],
        ]
        # Arrays of nothing but nulls go as one null (dumping costs Python time per item).
        touched: set[str] = set()
        for r in rows:
            touched.update(r.modes)
        for info in self.values:
            name = info.column.name
            if name not in touched:
                params += [None, None, None] if info.numeric else [None, None]
                continue
            params.append([r.modes.get(name, 0) for r in rows])
            params.append([r.insert.get(name) for r in rows])
            if info.numeric:
                deltas = [r.delta.get(name) for r in rows]
                params.append(deltas if any(d is not None for d in deltas) else None)
        return params

    def delete_params(self, rows: Sequence[RowWrite]) -> list[list[Any]]:
        params: list[list[Any]] = [
            [r.key[i] for r in rows] for i in range(len(self.key_columns))
        ]
        deleted = [r.delete_at or r.last for r in rows]
        params += [[p[0] for p in deleted], [p[1] for p in deleted]]
        return params


@dataclass(slots=True)
class _Change:
    """One op, validated and normalised."""

    shape: TableTarget
    key: tuple[Any, ...]
    ident: tuple[Any, ...]  # the key, cheap to hash
    delete: bool = False
    sets: dict[str, Any] = field(default_factory=dict)
    adds: dict[str, Any] = field(default_factory=dict)


def _fresh(change: _Change, position: Position, *,
           delete_at: Position | None = None) -> RowWrite:
    """A write that starts with this change (a fresh row takes the added amounts as initial
    values)."""
    modes = dict.fromkeys(change.sets, SET)
    if change.adds:
        modes.update(dict.fromkeys(change.adds, ADD))
    return RowWrite(
        change.key, position, position, delete_at, True, modes, dict(change.adds),
        change.sets | change.adds,
    )


class Applier:
    """Applies one projection's handler to events, on the caller's connection and inside its
    transaction. `physical` maps table names to the tables written (a rebuild's twins)."""

    def __init__(
        self,
        projection: Projection,
        *,
        registry: Registry | None = None,
        physical: Mapping[str, str] | None = None,
        strict: bool = False,
    ) -> None:
        if registry is None:
            from domain.app import registry as app_registry

            registry = app_registry
        self.projection = projection
        self.registry = registry
        self.strict = strict
        self.reads = frozenset(projection.reads)
        mapping = dict(physical or {})
        self._shapes = {
            t.name: TableTarget(projection, t, mapping.get(t.name, t.name))
            for t in projection.tables
        }
        self._has_doubles = any(shape.doubles for shape in self._shapes.values())

    def physical(self, table: str) -> str:
        return self._shapes[table].physical

    def target(self, table: str) -> TableTarget:
        return self._shapes[table]

    # -- the pure part --------------------------------------------------------------------

    def plan(self, events: Iterable[Event]) -> WritePlan:
        """Run the handler over the events it reads and fold its ops into row writes."""
        fold = self.fold()
        fold.add(events)
        return fold.plan()

    def fold(self) -> Fold:
        """An empty page to add events to, in feed order, a slice at a time."""
        return Fold(self)



    def _handle(self, event: Event) -> Sequence[Upsert | Delete]:
        name = self.projection.name
        try:
            payload = self.registry.load_event(event)
            produced = self.projection.handler(event, payload)
        except Exception as exc:  # the handler is application code: any failure stops here
            raise HandlerError(
                f"{type(exc).__name__}: {exc}", projection=name, event=event
            ) from exc
        if type(produced) is not list and (
            not isinstance(produced, Sequence) or isinstance(produced, str | bytes)
        ):
            raise InvalidOpError(
                f"the handler returned {type(produced).__name__}, not a list of ops",
                projection=name,
                event=event,
            )
        for op in produced:
            if type(op) is not Upsert and not isinstance(op, Upsert | Delete):
                raise InvalidOpError(
                    f"the handler returned {type(op).__name__}, not Upsert or Delete",
                    projection=name,
                    event=event,
                )
        return produced

    def _invalid(
        self, message: str, event: Event, table: str | None = None, column: str | None = None
    ) -> InvalidOpError:
        return InvalidOpError(
            message, projection=self.projection.name, event=event, table=table, column=column
        )

    def _key(self, event: Event, shape: TableTarget, key: Mapping[str, Any]) -> tuple[Any, ...]:
        if len(key) == len(shape.key_parts):  # the usual case, without building any set
            try:
                values: list[Any] = [event.stream.tenant_id]
                for name, convert in shape.key_parts:
                    raw = key[name]
                    if raw is None:
                        break
                    values.append(convert(raw))
                else:
                    return tuple(values)
            except (KeyError, _BadValueError):
                pass
        return self._key_slowly(event, shape, key)

    def _key_slowly(
        self, event: Event, shape: TableTarget, key: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        """The same as `_key`, with the error that says what is wrong."""
        table = shape.table.name
        if TENANT_COLUMN in key:
            raise self._invalid(
                f"table {table}: the key names {TENANT_COLUMN}, which comes from the event's "
                "stream, never from the handler",
                event, table, TENANT_COLUMN,
            )
        unknown = sorted(set(key) - shape.key_names)
        if unknown:
            raise self._invalid(
                f"table {table}: {unknown[0]!r} is not a primary key column "
                f"(the key is {sorted(shape.key_names)})",
                event, table, unknown[0],
            )
        values = [event.stream.tenant_id]
        for column, convert in zip(shape.key_columns[1:], shape.key_convert, strict=True):
            if column.name not in key:
                raise self._invalid(
                    f"table {table}: the key lacks primary key column {column.name!r}",
                    event, table, column.name,
                )
            raw = key[column.name]
            if raw is None:
                raise self._invalid(
                    f"table {table}: primary key column {column.name!r} is null",
                    event, table, column.name,
                )
            try:
                values.append(convert(raw))
            except _BadValueError as exc:
                raise self._invalid(
                    f"table {table}, column {column.name} ({column.type}): {exc}",
                    event, table, column.name,
                ) from None
        return tuple(values)

    def _value(self, event: Event, shape: TableTarget, name: str, raw: Any,
               adding: bool) -> Any:
        info = shape.by_name.get(name)
        if info is not None and raw is not None and (info.numeric or not adding):
            try:
                return info.convert(raw)
            except _BadValueError:
                pass
        elif info is not None and raw is None and not adding and info.column.nullable:
            return None
        return self._value_slowly(event, shape, name, raw, adding)

    def _value_slowly(self, event: Event, shape: TableTarget, name: str, raw: Any,
                      adding: bool) -> Any:
        """The same as `_value`, with the error that says what is wrong."""
        table = shape.table.name
        info = shape.by_name.get(name)
        if info is None:
            if name in shape.key_names or name == TENANT_COLUMN:
                why = "is part of the primary key (give it in `key`)"
            elif name in GUARD_COLUMNS:
                why = "is written by Intent, never by a handler"
            else:
                why = "is not a column of the table"
            raise self._invalid(f"table {table}: {name!r} {why}", event, table, name)
        column = info.column
        if adding and not info.numeric:
            raise self._invalid(
                f"table {table}: cannot add to {name} ({column.type}), only to a number",
                event, table, name,
            )
        if raw is None:
            if adding or not column.nullable:
                raise self._invalid(
                    f"table {table}: {name} is not nullable" if not adding
                    else f"table {table}: cannot add null to {name}",
                    event, table, name,
                )
            return None
        try:
            return info.convert(raw)
        except _BadValueError as exc:
            raise self._invalid(
                f"table {table}, column {name} ({column.type}): {exc}", event, table, name
            ) from None

    def _normalise(self, event: Event, op: Upsert | Delete) -> _Change:
        shape = self._shapes.get(op.table)
        if shape is None:
            raise self._invalid(
                f"no table {op.table!r} in this projection "
                f"(its tables: {sorted(self._shapes)})",
                event, op.table,
            )
        key = self._key(event, shape, op.key)
        # Hashing UUIDs runs Python code; their ints hash in C, and rows are looked up often.
        ident = tuple([v.int if type(v) is UUID else v for v in key])
        if isinstance(op, Delete):
            return _Change(shape, key, ident, True, {}, {})
        sets, adds = op.set, op.add
        if sets and adds and sets.keys() & adds.keys():
            column = sorted(sets.keys() & adds.keys())[0]
            raise self._invalid(
                f"table {op.table}: {column!r} is both set and added in one op",
                event, op.table, column,
            )
        value = self._value
        return _Change(
            shape,
            key,
            ident,
            False,
            {n: value(event, shape, n, v, False) for n, v in sets.items()} if sets else {},
            {n: value(event, shape, n, v, True) for n, v in adds.items()} if adds else {},
        )

    def _fold_event(
        self,
        event: Event,
        position: Position,
        changes: list[_Change],
        rows: dict[str, dict[tuple[Any, ...], list[RowWrite]]],
    ) -> None:
        """Fold one event's changes into the page's row writes.

        An event's ops on one row act as one change under one guard. A row whose pending
        write already adds (from an earlier event) to a double precision column this event
        adds to again gets a second write instead, since (x + a) + b is not x + (a + b) in
        floating point; the split is made before the event's first op on the row, so that
        each write's guard is a whole event.
        """
        if not self._has_doubles:
            for change in changes:
                chains = rows[change.shape.table.name]
                if change.delete:
                    chains[change.ident] = [RowWrite(change.key, position, position, position)]
                    continue
                chain = chains.get(change.ident)
                if chain and chain[-1].tail:
                    self._combine(event, chain[-1], change, position)
                else:
                    after = chain[-1].delete_at if chain else None
                    chains[change.ident] = [_fresh(change, position, delete_at=after)]
            return
        doubles: dict[tuple[str, tuple[Any, ...]], set[str]] = {}
        if self._has_doubles:
            deleted: set[tuple[str, tuple[Any, ...]]] = set()
            for change in changes:
                row = (change.shape.table.name, change.ident)
                if change.delete:
                    deleted.add(row)
                elif row not in deleted:
                    doubles.setdefault(row, set()).update(
                        n for n in change.adds if n in change.shape.doubles
                    )
        started: set[tuple[str, tuple[Any, ...]]] = set()
        for change in changes:
            chains = rows[change.shape.table.name]
            first_in_event = False
            if doubles:
                row = (change.shape.table.name, change.ident)
                first_in_event = row not in started
                started.add(row)
            if change.delete:
                # Whatever the page did to the row before is moot once it is deleted.
                chains[change.ident] = [
                    RowWrite(key=change.key, first=position, last=position, delete_at=position)
                ]
                continue
            chain = chains.get(change.ident)
            if not chain or not chain[-1].tail:
                after = chain[-1].delete_at if chain else None
                chains[change.ident] = [_fresh(change, position, delete_at=after)]
                continue
            current = chain[-1]
            if first_in_event and any(
                current.modes.get(n) == ADD
                for n in doubles.get((change.shape.table.name, change.ident), ())
            ):
                chain.append(_fresh(change, position))
                continue
            self._combine(event, current, change, position)

    def _combine(
        self, event: Event, current: RowWrite, change: _Change, position: Position
    ) -> None:
        shape = change.shape
        current.last = position
        for name, value in change.sets.items():
            current.modes[name] = SET
            current.insert[name] = value
            current.delta.pop(name, None)
        for name, amount in change.adds.items():
            mode = current.modes.get(name)
            if mode == SET:
                current.insert[name] = _plus(current.insert[name], amount)
            elif mode == ADD:
                if name in shape.doubles:
                    raise self._invalid(
                        f"table {shape.table.name}: one event adds to the double precision "
                        f"column {name} of a row twice; add the sum once (floating-point "
                        "sums depend on their order)",
                        event, shape.table.name, name,
                    )
                current.delta[name] = _plus(current.delta[name], amount)
                current.insert[name] = _plus(current.insert[name], amount)
            else:  # untouched so far: an existing row adds to its value, a new one to the default
                current.modes[name] = ADD
                current.delta[name] = amount
                current.insert[name] = _plus(shape.by_name[name].default_number, amount)

    # -- the database part ----------------------------------------------------------------

    async def apply(self, conn: Conn, events: Sequence[Event]) -> ApplyResult:
        """Apply the events (those the projection does not read are passed over)."""
        return await self.write(conn, self.plan(events), events)

    async def write(
        self, conn: Conn, plan: WritePlan, events: Sequence[Event] = (), *,
        counted: bool = True,
    ) -> ApplyResult:
        """Send the plan's statements. `counted=False` (for a connection in pipeline mode,
        where statements are only sent here) leaves the upserts' written and skipped counts
        at 0 instead of waiting for each statement's result."""
        if not counted and self.strict:
            raise ValueError("strict writes need their counts")
        written = skipped = statements = 0
        for write in plan.writes:
            shape = self._shapes[write.table.name]
            try:
                async with conn.cursor() as cur:
                    if write.upserts:
                        merging = shape.merge_params(write.upserts)
                        await cur.execute(shape.merge, merging, binary=True)
                        statements += 1
                        if counted:
                            done = max(cur.rowcount, 0)
                            written += done
                            skipped += len(write.upserts) - done
                    if write.deletes:
                        deleting = shape.delete_params(write.deletes)
                        await cur.execute(shape.delete, deleting, binary=True)
                        statements += 1
                        row = await cur.fetchone()
                        if row is not None:
                            written += int(row[0])
                            skipped += int(row[1])
            except psycopg.Error as exc:
                if not isinstance(exc, psycopg.errors.DataError | psycopg.errors.IntegrityError):
                    raise  # the connection or the server, not the data: the caller retries
                if self.strict and isinstance(exc, psycopg.errors.UniqueViolation):
                    # Inline: another transaction inserted the same new row meanwhile.
                    raise StaleWriteError(
                        f"table {write.physical}: another transaction created one of these "
                        "rows first; retry the transaction",
                        projection=self.projection.name,
                        table=write.table.name,
                    ) from exc
                first = events[0] if len(events) == 1 else None
                raise WriteError(
                    f"table {write.physical}: {str(exc).strip()}",
                    projection=self.projection.name,
                    event=first,
                    table=write.table.name,
                ) from exc
            if self.strict and skipped:
                raise StaleWriteError(
                    f"table {write.physical}: {skipped} row(s) already hold a newer event "
                    "than this transaction's (a transaction with a later id wrote them first); "
                    "retry the transaction",
                    projection=self.projection.name,
                    table=write.table.name,
                )
        return ApplyResult(
            events=plan.events,
            handled=plan.handled,
            ops=plan.ops,
            rows=plan.rows,
            written=written,
            skipped=skipped,
            statements=statements,
        )


class Fold:
    """A page being folded: `add` events (in order, in as many slices as suits the caller,
    e.g. to let other tasks run in between), then `plan` its writes."""

    def __init__(self, applier: Applier) -> None:
        self._applier = applier
        self._rows: dict[str, dict[tuple[Any, ...], list[RowWrite]]] = {
            name: {} for name in applier._shapes
        }
        self.events = self.handled = self.ops = 0

    def add(self, events: Iterable[Event]) -> None:
        applier = self._applier
        rows = self._rows
        reads, handle, normalise = applier.reads, applier._handle, applier._normalise
        fold = applier._fold_event
        seen = handled = ops = 0
        for event in events:
            seen += 1
            if event.event_type not in reads:
                continue
            handled += 1
            txid, at = event.transaction_id, event.position
            if txid is None or at is None:
                raise ProjectionError(
                    "the event has no feed position (it was never stored)",
                    projection=applier.projection.name,
                    event=event,
                )
            changes = [normalise(event, op) for op in handle(event)]
            ops += len(changes)
            fold(event, (txid, at), changes, rows)
        self.events += seen
        self.handled += handled
        self.ops += ops

    def plan(self) -> WritePlan:
        writes: list[TableWrite] = []
        shapes = self._applier._shapes
        for name in sorted(self._rows):  # a fixed table order: concurrent writers never deadlock
            shape = shapes[name]
            by_key = self._rows[name]
            depth = max((len(chain) for chain in by_key.values()), default=0)
            for generation in range(depth):
                batch = [chain[generation] for chain in by_key.values() if len(chain) > generation]
                writes.append(
                    TableWrite(
                        table=shape.table,
                        physical=shape.physical,
                        generation=generation,
                        upserts=[r for r in batch if r.tail],
                        deletes=[r for r in batch if not r.tail],
                    )
                )
        return WritePlan(events=self.events, handled=self.handled, ops=self.ops, writes=writes)
