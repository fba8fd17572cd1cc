"""A second application, for tests only: counters that add up amounts, a saga that closes a
counter once its total reaches a threshold, and a read model of the totals. It shares
nothing with the example shop; the pipeline runs it because INTENT_APP names it."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.aggregate import Aggregate
from domain.errors import DomainRejection
from domain.registry import Registry
from domain.saga import Action, Complete, IssueCommand, Saga
from projections.application import Application
from projections.metadata import Column, Projection, Table
from projections.rules import On, Rules, literal, payload

CLOSE_AT = 10


class Add(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    counter_id: UUID
    amount: int = Field(ge=1, le=1000)


class Close(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    counter_id: UUID


class Added(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    counter_id: UUID
    amount: int
    total: int


class Closed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    counter_id: UUID
    total: int


class CounterState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    total: int = 0
    closed: bool = False


class Counter(Aggregate[CounterState]):
    type_name = "tally.counter"
    state_model = CounterState

    @classmethod
    def decide(cls, command: BaseModel, state: CounterState) -> Sequence[BaseModel]:
        match command:
            case Add(counter_id=counter_id, amount=amount):
                if state.closed:
                    raise DomainRejection("counter_closed", "the counter is closed")
                return [Added(counter_id=counter_id, amount=amount, total=state.total + amount)]
            case Close(counter_id=counter_id):
                return [] if state.closed else [Closed(counter_id=counter_id, total=state.total)]
            case _:
                cls.unhandled_command(command)

    @classmethod
    def evolve(cls, state: CounterState, event: BaseModel) -> CounterState:
        match event:
            case Added(total=total):
                return state.model_copy(update={"total": total})
            case Closed():
                return state.model_copy(update={"closed": True})
            case _:
                cls.unhandled_event(event)


class CloserState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    asked: bool = False


class Closer(Saga[CloserState]):
    """Closes a counter once its total reaches CLOSE_AT."""

    name = "tally.closer"
    state_model = CloserState
    starts_on = frozenset({"tally.added"})

    @classmethod
    def instance_of(cls, event: BaseModel) -> str | None:
        return str(event.counter_id) if isinstance(event, Added) else None

    @classmethod
    def react(
        cls, state: CloserState, event: BaseModel
    ) -> tuple[CloserState, Sequence[Action]]:
        if state.asked or not isinstance(event, Added) or event.total < CLOSE_AT:
            return state, []
        close = IssueCommand("tally.close", {"counter_id": str(event.counter_id)}, key="close")
        return CloserState(asked=True), [close, Complete("closed")]


registry = Registry()
registry.aggregate(Counter)
registry.event("tally.added")(Added)
registry.event("tally.closed")(Closed)
WRITERS = {"authenticated", "service_role"}
registry.command("tally.add", aggregate=Counter, aggregate_id="counter_id", roles=WRITERS)(Add)
registry.command("tally.close", aggregate=Counter, aggregate_id="counter_id", roles=WRITERS)(Close)

COUNTER = {"counter_id": payload("counter_id")}
TALLY_TOTALS = Projection(
    name="tally_totals",
    version=1,
    tables=(
        Table(
            name="tally_totals",
            columns=(
                Column(name="tenant_id", type="uuid", nullable=False),
                Column(name="counter_id", type="uuid", nullable=False),
                Column(name="total", type="bigint", nullable=False, default=0),
                Column(name="closed", type="boolean", nullable=False, default=False),
            ),
            primary_key=("tenant_id", "counter_id"),
        ),
    ),
    readers=("authenticated",),
    mode="async",
    handler=Rules(
        On("tally.added", "tally_totals", key=COUNTER, set={"total": payload("total")}),
        On("tally.closed", "tally_totals", key=COUNTER, set={"closed": literal(True)}),
    ),
)

application = Application.compose("tally", registry, sagas=[Closer], projections=[TALLY_TOTALS])
