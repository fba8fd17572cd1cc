"""The applier's pure half: validating handler ops and folding a page of them into row writes.

The folding property compares two models on every generated page: applying each event's ops
one event at a time with the position guard (what the brief defines), and applying the folded
writes with the semantics of the MERGE the applier sends. They must agree exactly, floats
included. The integration tests check the MERGE itself against the database.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from domain.contracts import Event, Metadata, StreamId
from projections.apply import Applier
from projections.errors import HandlerError, InvalidOpError, ProjectionError
from projections.metadata import Column, Delete, Op, Projection, SqlFunction, Table, Upsert
from projections.shop import registry
from projections.writes import ADD, SET, RowWrite, WritePlan
from pump.projections.pages import fewer_collections

TENANT = UUID("00000000-0000-4000-8000-0000000000aa")
OTHER = UUID("00000000-0000-4000-8000-0000000000bb")

LEDGER = Table(
    name="ledger",
    columns=(
        Column(name="tenant_id", type="uuid", nullable=False),
        Column(name="account", type="text", nullable=False),
        Column(name="label", type="text"),
        Column(name="count", type="bigint", nullable=False, default=0),
        Column(name="total", type="numeric", default=0),
        Column(name="ratio", type="double precision", nullable=False, default=1.5),
        Column(name="note", type="jsonb"),
        Column(name="at", type="timestamptz", default=SqlFunction.NOW),
    ),
    primary_key=("tenant_id", "account"),
)
VALUE_COLUMNS = [c.name for c in LEDGER.value_columns]
NOW = "<now()>"  # what the database would fill in; compared symbolically
DEFAULTS: dict[str, Any] = {
    "label": None, "count": 0, "total": Decimal(0), "ratio": 1.5, "note": None, "at": NOW,
}


@dataclass
class Script:
    """A handler whose ops are looked up by event id, so tests can script any page."""

    ops: dict[UUID, Sequence[Op]]

    def __call__(self, event: Event, payload: BaseModel) -> Sequence[Op]:
        return self.ops.get(event.event_id, [])


def projection(handler: Callable[[Event, BaseModel], Sequence[Op]]) -> Projection:
    return Projection(
        name="ledger", version=1, reads=("inventory.stock_received",), tables=(LEDGER,),
        handler=handler,
    )


def event(n: int, *, txid: int | None = None, tenant: UUID = TENANT,
          event_type: str = "inventory.stock_received", stored: bool = True) -> Event:
    stream = StreamId(tenant_id=tenant, aggregate_type="inventory.item", aggregate_id=uuid4())
    payload: dict[str, Any] = {"item_id": str(stream.aggregate_id), "quantity": 1}
    if event_type == "inventory.item_registered":
        payload = {"item_id": str(stream.aggregate_id), "sku": "S", "name": "N"}
    return Event(
        event_id=uuid4(),
        event_type=event_type,
        schema_version=2 if event_type == "inventory.stock_received" else 1,
        stream=stream,
        version=1,
        payload=payload,
        metadata=Metadata(tenant_id=tenant, correlation_id=uuid4()),
        position=n if stored else None,
        transaction_id=(txid if txid is not None else 1000 + n) if stored else None,
    )


def at(event: Event) -> tuple[int, int]:
    """An event's feed position as the applier keeps it: (transaction id, position)."""
    assert event.transaction_id is not None
    assert event.position is not None
    return (event.transaction_id, event.position)


def plan_of(pages: Sequence[Sequence[Op]]) -> tuple[list[Event], WritePlan]:
    events = [event(i + 1, txid=1000 + i // 3) for i in range(len(pages))]
    script = Script({e.event_id: ops for e, ops in zip(events, pages, strict=True)})
    return events, Applier(projection(script), registry=registry).plan(events)


def only_row(plan: WritePlan) -> RowWrite:
    rows = [r for w in plan.writes for r in (*w.upserts, *w.deletes)]
    assert len(rows) == 1
    return rows[0]


# -- validation ---------------------------------------------------------------------------


def failing(ops: Sequence[Op]) -> ProjectionError:
    events, _ = [event(1)], None
    applier = Applier(projection(Script({events[0].event_id: ops})), registry=registry)
    with pytest.raises(ProjectionError) as caught:
        applier.plan(events)
    message = str(caught.value)
    assert "projection ledger" in message
    assert str(events[0].event_id) in message
    return caught.value


def test_a_key_naming_tenant_id_is_refused() -> None:
    error = failing([Upsert(table="ledger", key={"tenant_id": OTHER, "account": "a"})])
    assert isinstance(error, InvalidOpError)
    assert error.column == "tenant_id"


def test_an_unknown_table_is_named_in_the_error() -> None:
    error = failing([Upsert(table="nowhere", key={"account": "a"})])
    assert "'nowhere'" in str(error)
    assert error.table == "nowhere"


def test_an_unknown_column_is_named_in_the_error() -> None:
    error = failing([Upsert(table="ledger", key={"account": "a"}, set={"colour": "red"})])
    assert error.column == "colour"
    assert "'colour'" in str(error)


@pytest.mark.parametrize(
    ("op", "column"),
    [
        (Upsert(table="ledger", key={}), "account"),
        (Upsert(table="ledger", key={"account": "a", "label": "x"}), "label"),
        (Upsert(table="ledger", key={"account": "a"}, set={"event_txid": 1}), "event_txid"),
        (Upsert(table="ledger", key={"account": "a"}, set={"account": "b"}), "account"),
        (Upsert(table="ledger", key={"account": "a"}, add={"label": 1}), "label"),
        (Upsert(table="ledger", key={"account": "a"}, set={"count": None}), "count"),
        (Upsert(table="ledger", key={"account": "a"}, set={"count": "7"}), "count"),
        (Upsert(table="ledger", key={"account": "a"}, add={"count": 1.5}), "count"),
        (Upsert(table="ledger", key={"account": "a"}, set={"label": 5}), "label"),
        (Upsert(table="ledger", key={"account": "a"}, set={"count": 1}, add={"count": 1}),
         "count"),
        (Upsert(table="ledger", key={"account": "a"}, set={"count": 2**63}), "count"),
        (Upsert(table="ledger", key={"account": "a"}, set={"at": "yesterday"}), "at"),
        (Delete(table="ledger", key={"account": None}), "account"),
    ],
)
def test_ops_that_do_not_fit_the_table_are_refused_naming_the_column(op: Op, column: str) -> None:
    error = failing([op])
    assert isinstance(error, InvalidOpError)
    assert error.column == column


def test_a_handler_failure_names_the_event_and_the_cause() -> None:
    def broken(event: Event, payload: BaseModel) -> Sequence[Op]:
        raise ZeroDivisionError("bad arithmetic")

    first = event(1)
    with pytest.raises(HandlerError, match="ZeroDivisionError: bad arithmetic") as caught:
        Applier(projection(broken), registry=registry).plan([first])
    record = caught.value.as_json()
    assert record["event_id"] == str(first.event_id)
    assert record["event_type"] == "inventory.stock_received"
    assert (record["transaction_id"], record["position"]) == (1001, 1)
    assert record["kind"] == "handler_failed"


def test_a_handler_returning_something_else_than_ops_is_refused() -> None:
    def sloppy(event: Event, payload: BaseModel) -> Sequence[Op]:
        return ["not an op"]  # type: ignore[list-item]

    with pytest.raises(InvalidOpError, match="not Upsert or Delete"):
        Applier(projection(sloppy), registry=registry).plan([event(1)])


def test_an_event_never_stored_cannot_be_applied() -> None:
    with pytest.raises(ProjectionError, match="no feed position"):
        Applier(projection(Script({})), registry=registry).plan([event(1, stored=False)])


def test_events_the_projection_does_not_read_never_reach_the_handler() -> None:
    calls: list[str] = []

    def counting(event: Event, payload: BaseModel) -> Sequence[Op]:
        calls.append(event.event_type)
        return []

    plan = Applier(projection(counting), registry=registry).plan(
        [event(1), event(2, event_type="inventory.item_registered"), event(3)]
    )
    assert calls == ["inventory.stock_received", "inventory.stock_received"]
    assert (plan.events, plan.handled, plan.ops) == (3, 2, 0)


def test_the_tenant_comes_from_the_event_and_values_are_normalised() -> None:
    when = "2025-01-02T03:04:05+00:00"
    events = [event(1, tenant=OTHER)]
    script = Script({events[0].event_id: [
        Upsert(table="ledger", key={"account": "a"},
               set={"total": 1.25, "ratio": 2, "note": {"id": UUID(int=1)}, "at": when})
    ]})
    row = only_row(Applier(projection(script), registry=registry).plan(events))
    assert row.key == (OTHER, "a")
    assert row.insert["total"] == Decimal("1.25")
    assert row.insert["ratio"] == 2.0
    assert isinstance(row.insert["ratio"], float)
    assert row.insert["note"] == '{"id":"00000000-0000-0000-0000-000000000001"}'
    assert row.insert["at"].isoformat() == when


# -- folding ------------------------------------------------------------------------------


def test_many_events_on_one_row_fold_into_one_write_guarded_by_the_first() -> None:
    events, plan = plan_of([
        [Upsert(table="ledger", key={"account": "a"}, set={"label": "x"}, add={"count": 2})],
        [Upsert(table="ledger", key={"account": "a"}, add={"count": 3, "total": 1})],
        [Upsert(table="ledger", key={"account": "a"}, set={"label": "y"})],
    ])
    row = only_row(plan)
    assert row.first == at(events[0])
    assert row.last == at(events[2])
    assert row.modes == {"label": SET, "count": ADD, "total": ADD}
    assert row.delta == {"count": 5, "total": 1}
    # A fresh row takes the first add as its initial value, later ones onto the default.
    assert row.insert == {"label": "y", "count": 5, "total": Decimal(1)}
    assert plan.rows == 1


def test_adding_twice_to_a_double_column_is_written_in_two_generations() -> None:
    _, plan = plan_of([
        [Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.1})],
        [Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.2})],
    ])
    assert [w.generation for w in plan.writes] == [0, 1]
    assert [w.upserts[0].delta for w in plan.writes] == [{"ratio": 0.1}, {"ratio": 0.2}]


def test_a_double_column_split_comes_before_the_events_first_op_on_the_row() -> None:
    events, plan = plan_of([
        [Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.1})],
        [Upsert(table="ledger", key={"account": "a"}, set={"label": "x"}),
         Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.2})],
    ])
    second = plan.writes[1].upserts[0]
    assert second.first == second.last == at(events[1])
    assert second.modes == {"label": SET, "ratio": ADD}


def test_one_event_adding_twice_to_a_double_column_of_a_row_is_refused() -> None:
    error = failing([Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.1}),
                     Upsert(table="ledger", key={"account": "a"}, add={"ratio": 0.2})])
    assert error.column == "ratio"
    assert "twice" in str(error)


def test_a_delete_then_an_upsert_replaces_the_row() -> None:
    events, plan = plan_of([
        [Upsert(table="ledger", key={"account": "a"}, add={"count": 9})],
        [Delete(table="ledger", key={"account": "a"})],
        [Upsert(table="ledger", key={"account": "a"}, set={"label": "new"})],
    ])
    row = only_row(plan)
    assert row.delete_at == at(events[1])
    assert row.tail
    assert row.insert == {"label": "new"}


def test_tables_are_written_in_name_order() -> None:
    assert [w.table.name for w in plan_of([[Delete(table="ledger", key={"account": "a"})]])[1]
            .writes] == ["ledger"]


def test_merge_statement_guards_every_update_by_feed_position() -> None:
    applier = Applier(
        projection(Script({})), physical={"ledger": "ledger__rebuild"}, registry=registry
    )
    statement = applier._shapes["ledger"].merge.decode()
    assert 'merge into "public"."ledger__rebuild"' in statement
    assert '(t."event_txid", t."event_position") < (s.first_txid, s.first_pos)' in statement
    assert '(t."event_txid", t."event_position") < (s.del_txid, s.del_pos)' in statement
    assert '"count" = case s."m1" when 1 then s."i1" when 2 then t."count" + s."d1"' in statement


# -- the property: folded writes == event-by-event application ------------------------------

Row = dict[str, Any]
KEYS = ("a", "b", "c")
OLD, NEW = (1, 1), (10**9, 1)


def plus(total: Any, delta: Any) -> Any:
    if total is None or delta is None:
        return None
    if isinstance(total, Decimal):
        return total + Decimal(delta)
    return total + delta


def one_by_one(initial: dict[str, Row], pages: Sequence[Sequence[Op]],
               events: list[Event]) -> dict[str, Row]:
    """The definition: each event's ops on a row apply iff the row is absent or older."""
    rows = {k: dict(v) for k, v in initial.items()}
    for ev, ops in zip(events, pages, strict=True):
        position = at(ev)
        applies: dict[str, bool] = {}
        for op in ops:
            key = op.key["account"]
            if key not in applies:
                row = rows.get(key)
                applies[key] = row is None or row["pos"] < position
            if not applies[key]:
                continue
            if isinstance(op, Delete):
                rows.pop(key, None)
                continue
            current = rows.get(key)
            if current is None:
                current = dict(DEFAULTS)
                current.update({n: normal(n, v) for n, v in op.set.items()})
                current.update({n: normal(n, v) for n, v in op.add.items()})
            else:
                current.update({n: normal(n, v) for n, v in op.set.items()})
                for name, amount in op.add.items():
                    current[name] = plus(current[name], normal(name, amount))
            current["pos"] = position
            rows[key] = current
    return rows


def normal(name: str, value: Any) -> Any:
    if value is None:
        return None
    return {"total": Decimal, "ratio": float, "count": int}.get(name, lambda v: v)(value)


def folded(initial: dict[str, Row], plan: WritePlan) -> dict[str, Row]:
    """The MERGE and DELETE the applier sends, statement by statement, in Python."""
    rows = {k: dict(v) for k, v in initial.items()}
    for write in plan.writes:
        for r in write.upserts:
            key = r.key[1]
            row = rows.get(key)
            if row is None or (r.delete_at is not None and row["pos"] < r.delete_at):
                fresh = {
                    c: DEFAULTS[c] if r.modes.get(c, 0) == 0 else r.insert[c]
                    for c in VALUE_COLUMNS
                }
                rows[key] = fresh | {"pos": r.last}
            elif row["pos"] < r.first:
                for column in VALUE_COLUMNS:
                    mode = r.modes.get(column, 0)
                    if mode == SET:
                        row[column] = r.insert[column]
                    elif mode == ADD:
                        row[column] = plus(row[column], r.delta[column])
                row["pos"] = r.last
        for r in write.deletes:
            row = rows.get(r.key[1])
            if row is not None and r.delete_at is not None and row["pos"] < r.delete_at:
                del rows[r.key[1]]
    return rows


floats = st.sampled_from([0.1, 0.2, 0.3, 1e16, -1e16, 3.0, -0.7])
set_values: dict[str, st.SearchStrategy[Any]] = {
    "label": st.one_of(st.none(), st.sampled_from(["x", "y"])),
    "count": st.integers(-5, 5),
    "total": st.sampled_from([Decimal("0.1"), Decimal("2.5"), None]),
    "ratio": floats,
}
add_values: dict[str, st.SearchStrategy[Any]] = {
    "count": st.integers(-5, 5),
    "total": st.integers(-5, 5),
    "ratio": floats,
}


@st.composite
def ops(draw: st.DrawFn) -> Op:
    key = {"account": draw(st.sampled_from(KEYS))}
    if draw(st.integers(0, 5)) == 0:
        return Delete(table="ledger", key=key)
    sets = draw(st.sets(st.sampled_from(sorted(set_values)), max_size=2))
    adds = draw(st.sets(st.sampled_from(sorted(set(add_values) - sets)), max_size=2))
    return Upsert(
        table="ledger",
        key=key,
        set={n: draw(set_values[n]) for n in sorted(sets)},
        add={n: draw(add_values[n]) for n in sorted(adds)},
    )


@st.composite
def initial_rows(draw: st.DrawFn) -> dict[str, Row]:
    rows = {}
    for key in KEYS:
        state = draw(st.sampled_from(["absent", "older", "newer"]))
        if state != "absent":
            rows[key] = dict(DEFAULTS, count=draw(st.integers(0, 9)), ratio=draw(floats),
                             pos=OLD if state == "older" else NEW)
    return rows


@settings(max_examples=300, deadline=None)
@given(initial=initial_rows(), pages=st.lists(st.lists(ops(), max_size=3), max_size=12))
def test_folded_writes_equal_event_by_event_application(
    initial: dict[str, Row], pages: list[list[Op]]
) -> None:
    for ops_of_event in pages:  # refused on purpose (see the test above)
        ratio_adds = [o.key["account"] for o in ops_of_event
                      if isinstance(o, Upsert) and "ratio" in o.add]
        assume(len(ratio_adds) == len(set(ratio_adds)))
    events, plan = plan_of(pages)
    assert folded(initial, plan) == one_by_one(initial, pages, events)
    in_slices = Applier(projection(Script(dict(zip(
        [e.event_id for e in events], pages, strict=True)))), registry=registry).fold()
    for start in range(0, len(events), 5):
        in_slices.add(events[start:start + 5])
    assert in_slices.plan() == plan
    keys_written = {r.key for w in plan.writes for r in (*w.upserts, *w.deletes)}
    assert len([r for w in plan.writes if w.generation == 0
                for r in (*w.upserts, *w.deletes)]) == len(keys_written)


def test_overlapping_catch_ups_restore_the_collector_threshold_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    assert gc.get_threshold()[0] >= 20_000
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] >= 20_000
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
