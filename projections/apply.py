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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from domain.contracts import Event
from domain.registry import Registry
from projections.errors import (
    HandlerError,
    InvalidOpError,
    ProjectionError,
)
from projections.metadata import (
    GUARD_COLUMNS,
    TENANT_COLUMN,
    Delete,
    Projection,
    Upsert,
)
from projections.values import (
    BadValueError,
    plus,
)
from projections.writes import (
    ADD,
    SET,
    ApplyResult,
    Position,
    RowWrite,
    TableTarget,
    TableWrite,
    WritePlan,
    send,
)


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
        registry: Registry,
        physical: Mapping[str, str] | None = None,
        strict: bool = False,
    ) -> None:
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
            except (KeyError, BadValueError):
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
            except BadValueError as exc:
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
            except BadValueError:
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
        except BadValueError as exc:
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
                current.insert[name] = plus(current.insert[name], amount)
            elif mode == ADD:
                if name in shape.doubles:
                    raise self._invalid(
                        f"table {shape.table.name}: one event adds to the double precision "
                        f"column {name} of a row twice; add the sum once (floating-point "
                        "sums depend on their order)",
                        event, shape.table.name, name,
                    )
                current.delta[name] = plus(current.delta[name], amount)
                current.insert[name] = plus(current.insert[name], amount)
            else:  # untouched so far: an existing row adds to its value, a new one to the default
                current.modes[name] = ADD
                current.delta[name] = amount
                current.insert[name] = plus(shape.by_name[name].default_number, amount)

    # -- the database part ----------------------------------------------------------------

    async def apply(
        self, conn: psycopg.AsyncConnection[Any], events: Sequence[Event]
    ) -> ApplyResult:
        """Apply the events (those the projection does not read are passed over)."""
        return await self.write(conn, self.plan(events), events)

    async def write(
        self, conn: psycopg.AsyncConnection[Any], plan: WritePlan, events: Sequence[Event] = (), *,
        counted: bool = True,
    ) -> ApplyResult:
        """Send the plan's statements (see projections.writes.send)."""
        return await send(conn, plan, self._shapes, projection=self.projection.name,
                          strict=self.strict, events=events, counted=counted)


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
