"""A declared projection's fold over a range of the feed, done by PostgreSQL in one statement
per table.

The Python path (projections.apply) reads every event into Python, runs the handler, folds
the ops into one write per row and sends the rows back: ~65 us per event here, most of it
moving events across the wire and through pydantic. For a projection whose handler is
`Rules`, the same fold is a query: the events of the range become ops (one SELECT per rule,
values cast from the stored JSON), a window over each row's ops in feed order finds what
each column ends up as, and the result feeds the applier's own guarded MERGE (same source
columns, same guard), so the rows are what applying the events one by one would give:

- a column some op sets takes the last set value, plus the amounts added after it;
- a column only added to: an existing row adds the sum; a fresh row starts from the first
  op's amount when that op adds to it, else from the column's default;
- a delete makes the row start over with the ops after it, or removes the row when none
  follow;
- the whole range's fold is guarded by its first event, as the Python fold guards a page.

Projections it cannot fold (`unsupported` says why: handlers that are code, adding to a
`double precision` column, since a float sum depends on its order, which the Python fold
keeps and a SQL `sum` does not) always take the Python path; so does a range holding an
event type at an older schema version (upcasters are Python).

The payloads are read as stored: the worker validated each one against its model when it
was appended. An event written by hand that breaks its model is found only when a cast
fails; the caller (a rebuild, the runner) then applies that range through Python, which
names the event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from pydantic import BaseModel

from domain.feed import FeedPosition
from projections.apply import Applier
from projections.metadata import Projection
from projections.rules import Constant, EventFact, Negated, On, PayloadField, Rules, Term
from projections.sql import default_sql, type_sql
from projections.values import ColumnInfo
from projections.writes import TableTarget

log = logging.getLogger("intent.projections")


def unsupported(projection: Projection) -> str | None:
    """Why this projection cannot be folded in SQL, or None when it can."""
    rules = projection.handler
    if not isinstance(rules, Rules):
        return "its handler is Python code, not Rules"
    for rule in rules.rules:
        table = projection.table(rule.table)
        for name in rule.add:
            if table.column(name).type == "double precision":
                return (f"a rule for {rule.event} adds to {table.name}.{name}, a double "
                        "precision column (float sums depend on their order)")
    return None


@dataclass(frozen=True)
class TableFold:
    """One table's statements for a range: the MERGE, and the DELETE when a rule deletes."""

    merge: bytes
    delete: bytes | None


class SetFold:
    """The compiled statements for one projection (and the tables its applier writes:
    live or a rebuild's twins). Parameters of each statement: `range_params`."""

    def __init__(self, applier: Applier) -> None:
        projection = applier.projection
        why = unsupported(projection)
        if why is not None:
            raise ValueError(f"projection {projection.name} cannot be folded in SQL: {why}")
        assert isinstance(projection.handler, Rules)
        self.projection = projection
        known = applier.registry.event_types()
        self._models: Mapping[str, type[BaseModel]] = {
            name: known[name].payload_model for name in projection.reads}
        self.types = sorted(projection.reads)
        # "type@version" of each type's current schema: a range holding any other version
        # needs the upcasters, so the Python path.
        self.current = sorted(f"{name}@{known[name].version}" for name in projection.reads)
        rules = projection.handler.rules
        self.tables: list[TableFold] = []
        for table in sorted(projection.tables, key=lambda t: t.name):
            mine = [(index, rule) for index, rule in enumerate(rules) if rule.table == table.name]
            if not mine:
                continue
            target = applier.target(table.name)
            fold = self._fold(target, mine)
            schema = projection.schema_name
            merge = target.merge_sql(
                schema, sql.SQL("select * from ({}) as f where f.has_tail").format(fold)
            )
            delete = None
            if any(rule.delete for _, rule in mine):
                delete = self._delete(target, schema, fold)
            self.tables.append(TableFold(
                merge.as_string(None).encode(),
                delete.as_string(None).encode() if delete is not None else None,
            ))

    def range_params(self, after: FeedPosition, upto: FeedPosition) -> dict[str, Any]:
        return {
            "after_txid": str(after.transaction_id), "after_pos": after.position,
            "upto_txid": str(upto.transaction_id), "upto_pos": upto.position,
            "types": self.types,
        }

    # -- rendering ------------------------------------------------------------------------

    def _value(self, value: Term, model: type[BaseModel], column_type: str) -> sql.Composable:
        type_ = sql.SQL(type_sql(column_type))
        match value:
            case PayloadField(name=name):
                field = model.model_fields[name]
                if column_type == "jsonb":
                    got: sql.Composable = sql.SQL("(e.payload -> {})").format(sql.Literal(name))
                    if not field.is_required() and field.default is not None:
                        got = sql.SQL("coalesce({}, {}::jsonb)").format(
                            got, sql.Literal(json.dumps(field.default)))
                    return got
                text: sql.Composable = sql.SQL("(e.payload ->> {})").format(sql.Literal(name))
                if not field.is_required() and field.default is not None:
                    # A payload stored before the field existed: its model's default.
                    text = sql.SQL("coalesce({}, {})").format(
                        text, sql.Literal(_as_text(field.default)))
                return sql.SQL("({})::{}").format(text, type_)
            case EventFact(name="occurred_at"):
                return sql.SQL("((e.metadata ->> 'occurred_at')::timestamptz)::{}").format(type_)
            case EventFact():
                return sql.SQL("(e.aggregate_id)::{}").format(type_)
            case Constant(value=constant):
                return sql.SQL("({})::{}").format(sql.Literal(constant), type_)
            case Negated(of=inner):
                return sql.SQL("(-{})").format(self._value(inner, model, column_type))
        raise AssertionError(value)

    def _ops(self, target: TableTarget, rules: list[tuple[int, On]]) -> sql.Composable:
        """One SELECT per rule: an op per event, its key, its place in the feed, and per
        value column whether it sets it (s), to what (v), and what it adds (a)."""
        branches: list[sql.Composable] = []
        for index, rule in rules:
            model = self._models[rule.event]
            parts: list[sql.Composable] = [sql.SQL("e.tenant_id as k0")]
            for i, column in enumerate(target.key_columns[1:], 1):
                parts.append(sql.SQL("{} as {}").format(
                    self._value(rule.key[column.name], model, column.type),
                    sql.Identifier(f"k{i}")))
            parts += [sql.SQL("e.txid, e.pos, {} as opn, {} as del").format(
                sql.Literal(index), sql.Literal(rule.delete))]
            for i, info in enumerate(target.values):
                column = info.column
                type_ = sql.SQL(type_sql(column.type))
                sets = rule.set.get(column.name)
                parts.append(sql.SQL("{} as {}").format(
                    sql.Literal(sets is not None), sql.Identifier(f"s{i}")))
                parts.append(sql.SQL("{} as {}").format(
                    self._value(sets, model, column.type) if sets is not None
                    else sql.SQL("null::{}").format(type_),
                    sql.Identifier(f"v{i}")))
                if info.numeric:
                    adds = rule.add.get(column.name)
                    parts.append(sql.SQL("{} as {}").format(
                        self._value(adds, model, column.type) if adds is not None
                        else sql.SQL("null::{}").format(type_),
                        sql.Identifier(f"a{i}")))
            branches.append(sql.SQL("select {} from ev as e where e.event_type = {}").format(
                sql.SQL(", ").join(parts), sql.Literal(rule.event)))
        return sql.SQL(" union all ").join(branches)

    def _fold(self, target: TableTarget, rules: list[tuple[int, On]]) -> sql.Composable:
        keys = sql.SQL(", ").join(
            sql.Identifier(f"k{i}") for i in range(len(target.key_columns)))
        set_columns = {name for _, rule in rules for name in rule.set}
        add_columns = {name for _, rule in rules for name in rule.add}
        # Per op, counted from the newest op of its row back to it: dc, the deletes (0: the
        # op is after the row's last delete, in its "tail"); rc<i>, the sets of column i
        # (0: after the column's last set; 1 on that set itself).
        windows: list[sql.Composable] = [
            sql.SQL("row_number() over w as rn"),
            sql.SQL("coalesce(lead(o.del) over w, true) as starts"),
            sql.SQL("count(*) filter (where o.del) over w as dc"),
        ]
        out: list[sql.Composable] = [
            keys,
            sql.SQL("bool_or(dc = 0) as has_tail"),
            sql.SQL("max(txid) filter (where del and dc = 1) as del_txid"),
            sql.SQL("max(pos) filter (where del and dc = 1) as del_pos"),
            sql.SQL("max(txid) filter (where dc = 0 and starts) as first_txid"),
            sql.SQL("max(pos) filter (where dc = 0 and starts) as first_pos"),
            sql.SQL("max(txid) filter (where rn = 1) as last_txid"),
            sql.SQL("max(pos) filter (where rn = 1) as last_pos"),
        ]
        for i, info in enumerate(target.values):
            more_windows, more_out = self._column_fold(
                i, info, info.column.name in set_columns, info.column.name in add_columns
            )
            windows += more_windows
            out += more_out
        return sql.SQL(
            "with ev as ("
            "select e.tenant_id, e.aggregate_id, e.event_type, e.payload, e.metadata, "
            "e.transaction_id::text::bigint as txid, e.position as pos from intent.events e "
            "where (e.transaction_id, e.position) > (%(after_txid)s::text::xid8, %(after_pos)s) "
            "and (e.transaction_id, e.position) <= (%(upto_txid)s::text::xid8, %(upto_pos)s) "
            "and e.event_type = any(%(types)s::text[])), "
            "ops as ({ops}), "
            "w as (select o.*, {windows} from ops as o "
            "window w as (partition by {keys} order by txid desc, pos desc, opn desc)) "
            "select {out} from w group by {keys}"
        ).format(
            ops=self._ops(target, rules),
            windows=sql.SQL(", ").join(windows),
            keys=keys,
            out=sql.SQL(", ").join(out),
        )

    @staticmethod
    def _column_fold(
        i: int, info: ColumnInfo, sets: bool, adds: bool
    ) -> tuple[list[sql.Composable], list[sql.Composable]]:
        """Column i's part of the fold: its window (when rules set it) and its m/i/d outputs:
        untouched, set only, or added to (with or without sets)."""
        windows: list[sql.Composable] = []
        out: list[sql.Composable] = []
        column = info.column
        type_ = sql.SQL(type_sql(column.type))
        s, v, a, rc = (sql.Identifier(f"{p}{i}") for p in ("s", "v", "a", "rc"))
        m, ins, d = (sql.Identifier(f"{p}{i}") for p in ("m", "i", "d"))
        if sets:
            windows.append(sql.SQL("count(*) filter (where o.{}) over w as {}").format(s, rc))
        last_set = sql.SQL(
            "(array_agg({v}) filter (where dc = 0 and {s} and {rc} = 1))[1]"
        ).format(v=v, s=s, rc=rc)
        if not sets and not adds:
            out += [sql.SQL("0 as {}").format(m), sql.SQL("null::{} as {}").format(type_, ins)]
            if info.numeric:
                out.append(sql.SQL("null::{} as {}").format(type_, d))
            return windows, out
        if not adds:
            out += [
                sql.SQL("case when bool_or({s}) filter (where dc = 0) then 1 else 0 end "
                        "as {m}").format(s=s, m=m),
                sql.SQL("{} as {}").format(last_set, ins),
            ]
            if info.numeric:
                out.append(sql.SQL("null::{} as {}").format(type_, d))
            return windows, out
        total = sql.SQL("sum({a}) filter (where dc = 0)").format(a=a)
        default = default_sql(column)
        start = (sql.SQL("({})::{}").format(sql.SQL(default), type_) if default is not None
                 else sql.SQL("null::{}").format(type_))
        fresh = sql.SQL(
            "case when bool_or({a} is not null) filter (where dc = 0 and starts) "
            "then {total} else {start} + {total} end"
        ).format(a=a, total=total, start=start)
        if sets:
            after = sql.SQL("sum({a}) filter (where dc = 0 and {rc} = 0)").format(a=a, rc=rc)
            mode = sql.SQL(
                "case when bool_or({s}) filter (where dc = 0) then 1 "
                "when bool_or({a} is not null) filter (where dc = 0) then 2 else 0 end"
            ).format(s=s, a=a)
            value = sql.SQL(
                "case when bool_or({s}) filter (where dc = 0) "
                "then {last} + coalesce({after}, 0) else {fresh} end"
            ).format(s=s, last=last_set, after=after, fresh=fresh)
        else:
            mode = sql.SQL(
                "case when bool_or({a} is not null) filter (where dc = 0) then 2 else 0 end"
            ).format(a=a)
            value = fresh
        out += [
            sql.SQL("{} as {}").format(mode, m),
            sql.SQL("({})::{} as {}").format(value, type_, ins),
            sql.SQL("({})::{} as {}").format(total, type_, d),
        ]
        return windows, out

    def _delete(self, target: TableTarget, schema: str, fold: sql.Composable) -> sql.Composed:
        match = sql.SQL(" and ").join(
            sql.SQL("t.{} = f.{}").format(sql.Identifier(c.name), sql.Identifier(f"k{i}"))
            for i, c in enumerate(target.key_columns)
        )
        return sql.SQL(
            "delete from {schema}.{table} as t using ({fold}) as f "
            "where not f.has_tail and {match} "
            "and (t.event_txid, t.event_position) < (f.del_txid, f.del_pos)"
        ).format(schema=sql.Identifier(schema), table=sql.Identifier(target.physical),
                 fold=fold, match=match)


# -- ranges of the feed ---------------------------------------------------------------------

# The next range: its end, its size, how many events the projection reads and how many of
# those are not at their type's current schema version. Below the feed's horizon, so final.
_RANGE_SQL = b"""
with page as materialized (
  select e.transaction_id, e.position, e.event_type, e.schema_version from intent.events e
  where (e.transaction_id, e.position) > (%(txid)s::text::xid8, %(position)s)
    and e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
  order by e.transaction_id, e.position
  limit %(limit)s
)
select count(*),
  (select transaction_id::text::bigint from page
   order by transaction_id desc, position desc limit 1),
  (select position from page order by transaction_id desc, position desc limit 1),
  count(*) filter (where event_type = any(%(types)s::text[])),
  count(*) filter (where event_type = any(%(types)s::text[])
                   and not (event_type || '@' || schema_version) = any(%(current)s::text[]))
from page
"""


@dataclass(frozen=True)
class Range:
    """The next `events` feed events after a position, up to `end`."""

    end: FeedPosition
    events: int  # of every type
    handled: int  # of the types the projection reads
    older: int  # of those, stored at an older schema version than the current one


async def next_range(conn: psycopg.AsyncConnection[Any], after: FeedPosition, fold: SetFold, *,
                     limit: int) -> Range | None:
    """The next `limit` (at most) feed events below the horizon, or None when there are none.
    Read it before writing in the transaction (a transaction id holds the horizon back)."""
    cur = await conn.execute(_RANGE_SQL, {
        "txid": str(after.transaction_id), "position": after.position, "limit": limit,
        "types": fold.types, "current": fold.current,
    })
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    read, txid, position, handled, older = row
    return Range(FeedPosition(int(txid), int(position)), int(read), int(handled), int(older))


async def fold_range(
    conn: psycopg.AsyncConnection[Any], fold: SetFold, after: FeedPosition, upto: Range
) -> bool:
    """Fold the range's events into the tables, in the caller's transaction (a savepoint of
    its own). False, with nothing written, when the range holds older schema versions or
    its statements fail on the data: the caller then applies it through Python."""
    if upto.older:
        return False
    try:
        async with conn.transaction():
            await conn.execute("set local work_mem = '64MB'")
            params = fold.range_params(after, upto.end)
            for table in fold.tables:
                await conn.execute(table.merge, params)
                if table.delete is not None:
                    await conn.execute(table.delete, params)
    except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
        log.warning("projection %s: the SQL fold of %s..%s failed (%s); applying that range "
                    "through Python", fold.projection.name, after, upto.end, str(exc).strip())
        return False
    return True


def _as_text(value: bool | int | float | str) -> str:
    """A plain default as `->>` would give it from JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)
