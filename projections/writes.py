"""A page's folded writes and the statements that send them: one MERGE (upserts) and one
DELETE per table, each row guarded by its feed position (see projections.apply)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from domain.contracts import Event
from projections.errors import ProjectionError, StaleWriteError, WriteError
from projections.metadata import (
    GUARD_COLUMNS,
    Column,
    Projection,
    Table,
)
from projections.sql import default_sql, type_sql
from projections.values import (
    CONVERTERS,
    DOUBLE,
    ColumnInfo,
)

SET, ADD = 1, 2  # how a folded write changes a column of an existing row (0: not at all)
Position = tuple[int, int]  # (transaction id, position): a feed position, ordered like the feed


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
        self.values = tuple(ColumnInfo.of(c) for c in table.value_columns)
        self.by_name = {info.column.name: info for info in self.values}
        self.key_convert = tuple(CONVERTERS[c.type] for c in self.key_columns[1:])
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
        inserts, updates = self._value_expressions()
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

    def _value_expressions(self) -> tuple[list[sql.Composable], list[sql.Composable]]:
        """Per value column: what a fresh row gets, and how an existing row changes."""
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
        return inserts, updates

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


async def send(
    conn: psycopg.AsyncConnection[Any],
    plan: WritePlan,
    shapes: Mapping[str, TableTarget],
    *,
    projection: str,
    strict: bool,
    events: Sequence[Event] = (),
    counted: bool = True,
) -> ApplyResult:
    """Send the plan's statements. `counted=False` (for a connection in pipeline mode,
    where statements are only sent here) leaves the upserts' written and skipped counts
    at 0 instead of waiting for each statement's result."""
    if not counted and strict:
        raise ValueError("strict writes need their counts")
    written = skipped = statements = 0
    for write in plan.writes:
        shape = shapes[write.table.name]
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
            refused = _refused(exc, write, projection, strict, events)
            if refused is None:
                raise  # the connection or the server, not the data: the caller retries
            raise refused from exc
        if strict and skipped:
            raise StaleWriteError(
                f"table {write.physical}: {skipped} row(s) already hold a newer event "
                "than this transaction's (a transaction with a later id wrote them first); "
                "retry the transaction",
                projection=projection,
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


def _refused(
    exc: psycopg.Error, write: TableWrite, projection: str, strict: bool,
    events: Sequence[Event],
) -> ProjectionError | None:
    """What a refused write means: the data's fault (a WriteError pinned to the event when
    there is one), a lost race in strict mode, or None when it is not the data's."""
    if not isinstance(exc, psycopg.errors.DataError | psycopg.errors.IntegrityError):
        return None
    if strict and isinstance(exc, psycopg.errors.UniqueViolation):
        # Inline: another transaction inserted the same new row meanwhile.
        return StaleWriteError(
            f"table {write.physical}: another transaction created one of these "
            "rows first; retry the transaction",
            projection=projection,
            table=write.table.name,
        )
    return WriteError(
        f"table {write.physical}: {str(exc).strip()}",
        projection=projection,
        event=events[0] if len(events) == 1 else None,
        table=write.table.name,
    )
