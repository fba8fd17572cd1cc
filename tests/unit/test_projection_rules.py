"""Rules as a handler: the ops they give, and the declarations they refuse at start-up."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel

from domain.contracts import Event, Metadata, StreamId
from projections.metadata import Column, Delete, Projection, Table, Upsert
from projections.rules import (
    AGGREGATE_ID,
    OCCURRED_AT,
    On,
    Rules,
    RulesError,
    literal,
    neg,
    payload,
)
from tests.support.tenants import TENANT_A

TENANT = TENANT_A


class Moved(BaseModel):
    thing_id: UUID
    amount: int
    note: str | None = None
    label: str = "none"
    at: datetime | None = None
    tags: list[str] = []


MODELS = {"things.moved": Moved}


def projection(*rules: On) -> Projection:
    return Projection(
        name="things", version=1, reads=("things.moved",),
        tables=(Table(name="things", primary_key=("tenant_id", "thing_id"), columns=(
            Column(name="tenant_id", type="uuid", nullable=False),
            Column(name="thing_id", type="uuid", nullable=False),
            Column(name="total", type="bigint", nullable=False, default=0),
            Column(name="note", type="text"),
            Column(name="label", type="text", nullable=False, default=""),
            Column(name="seen_at", type="timestamptz"),
            Column(name="origin", type="uuid"),
        )),),
        handler=Rules(*rules),
    )


def moved(amount: int) -> tuple[Event, Moved]:
    thing = uuid4()
    stream = StreamId(tenant_id=TENANT, aggregate_type="things.thing", aggregate_id=thing)
    body = Moved(thing_id=thing, amount=amount, note="n")
    event = Event(
        event_id=uuid4(), event_type="things.moved", schema_version=1, stream=stream, version=1,
        payload=body.model_dump(mode="json"),
        metadata=Metadata(tenant_id=TENANT, correlation_id=uuid4(),
                          occurred_at=datetime(2026, 1, 2, tzinfo=UTC)),
    )
    return event, body


KEY = {"thing_id": payload("thing_id")}


def test_rules_give_their_ops_in_declaration_order() -> None:
    rules = Rules(
        On("things.moved", "things", key=KEY, set={"note": payload("note"), "seen_at": OCCURRED_AT,
                                                    "origin": AGGREGATE_ID},
           add={"total": neg(payload("amount"))}),
        On("things.other", "things", key=KEY, set={"label": literal("x")}),
        On("things.moved", "things", key=KEY, delete=True),
    )
    event, body = moved(4)
    ops = rules(event, body)
    assert ops == [
        Upsert(table="things", key={"thing_id": body.thing_id},
               set={"note": "n", "seen_at": datetime(2026, 1, 2, tzinfo=UTC),
                    "origin": event.stream.aggregate_id},
               add={"total": -4}),
        Delete(table="things", key={"thing_id": body.thing_id}),
    ]
    assert rules.events == {"things.moved", "things.other"}


def test_well_made_rules_pass_the_check() -> None:
    made = projection(On("things.moved", "things", key=KEY,
                         set={"note": payload("note"), "label": payload("label"),
                              "seen_at": payload("at")},
                         add={"total": payload("amount")}))
    assert isinstance(made.handler, Rules)
    made.handler.check(made, MODELS)


@pytest.mark.parametrize(("rule", "complaint"), [
    (On("things.moved", "nope", key=KEY), "no table 'nope'"),
    (On("things.moved", "things", key={"thing_id": payload("thing_id"),
                                        "tenant_id": AGGREGATE_ID}), "tenant_id comes from"),
    (On("things.moved", "things", key={"note": payload("note")}), "the key must name exactly"),
    (On("things.moved", "things", key=KEY, set={"nope": literal(1)}), "'nope' is not a column"),
    (On("things.moved", "things", key=KEY, add={"note": payload("amount")}),
     "cannot add to note (text)"),
    (On("things.moved", "things", key=KEY, set={"total": payload("amount")},
        add={"total": payload("amount")}), "both set and added"),
    (On("things.moved", "things", key=KEY, delete=True, set={"note": literal("x")}),
     "a delete rule neither sets nor adds"),
    (On("things.moved", "things", key=KEY, set={"label": payload("note")}),
     "may be null, and label may not"),
    (On("things.moved", "things", key=KEY, set={"origin": payload("note")}),
     "origin (uuid) cannot take payload field 'note'"),
    (On("things.moved", "things", key=KEY, set={"note": payload("missing")}),
     "Moved has no field 'missing'"),
    (On("things.moved", "things", key=KEY, set={"note": payload("tags")}),
     "default is not a plain constant"),
    (On("things.moved", "things", key=KEY, set={"seen_at": literal("today")}),
     "seen_at (timestamptz) cannot take the constant 'today'"),
    (On("things.unread", "things", key=KEY), "rules for events it does not read"),
])
def test_rules_that_could_not_run_as_declared_are_refused(rule: On, complaint: str) -> None:
    made = projection(rule)
    assert isinstance(made.handler, Rules)
    with pytest.raises(RulesError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        made.handler.check(made, {**MODELS, "things.unread": Moved})


def test_empty_rules_are_refused() -> None:
    with pytest.raises(RulesError, match="at least one"):
        Rules()


def test_a_projection_declared_with_rules_reads_what_its_rules_name_in_order() -> None:
    rules = Rules(
        On("things.moved", "things", key=KEY, add={"total": payload("amount")}),
        On("things.lost", "things", key=KEY, delete=True),
        On("things.moved", "things", key=KEY, set={"note": payload("note")}),
    )
    base = projection(On("things.moved", "things", key=KEY, add={"total": payload("amount")}))
    derived = Projection.model_validate(
        base.model_dump(exclude={"reads", "handler"}) | {"handler": rules}
    )
    assert derived.reads == ("things.moved", "things.lost")
    # An explicit `reads` still wins, and a handler that is not Rules must say what it reads.
    assert base.reads == ("things.moved",)
    with pytest.raises(ValueError, match="reads"):
        Projection.model_validate(
            base.model_dump(exclude={"reads", "handler"}) | {"handler": lambda e, b: []}
        )
