"""Given/when/then for aggregates: what a slice author's unit tests are written with.

    given = scenarios(registry)
    given(Item, ItemRegistered(item_id=i, sku="S", name="Bolt"), StockReceived(item_id=i,
          quantity=5)).when(ReserveStock(item_id=i, order_id=o, quantity=2)).then(
          StockReserved(item_id=i, order_id=o, quantity=2))
    given(Item).when(ReceiveStock(item_id=i, quantity=1)).then_rejected("item_not_registered")

Everything goes through the application's registry exactly as the pipeline does: the given
events are stored-shaped (dumped to JSON, stamped with their type's schema version, read back
through the registry's upcasters and models), the command is an envelope parsed by the
registry, and `decide` makes the events. So a test fails, with a `ScenarioError` naming the
mistake, when it gives an event type the registry does not know, a payload that does not read
back as itself, an older version's payload without an upcaster, or a command the registry
would refuse; and `then` compares the typed payloads the aggregate decided, in order.

Pure, like the rest of `domain`: no database, no clock (`NOW` stamps every envelope).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel

from domain.aggregate import Aggregate, StateT
from domain.contracts import Command, Event, Metadata, StreamId
from domain.decider import Loaded, decide, evolve_all, rehydrate
from domain.errors import DomainRejection, IntentError
from domain.registry import CommandType, Registry

TENANT = UUID("00000000-0000-4000-8000-00000000c0de")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class ScenarioError(AssertionError):
    """The test itself is wrong: it gives or expects something the registry would refuse."""


@dataclass(frozen=True)
class Stored:
    """An event as an older schema version wrote it: its type, version and JSON payload."""

    event_type: str
    schema_version: int
    payload: dict[str, Any]


Given = BaseModel | Stored


def scenarios(registry: Registry, *, tenant_id: UUID = TENANT) -> Callable[..., Scenario[Any]]:
    """`given(Aggregate, *events)` bound to one application's registry."""

    def given(aggregate: type[Aggregate[StateT]], *events: Given,
              aggregate_id: UUID | None = None) -> Scenario[StateT]:
        stream = StreamId(tenant_id=tenant_id, aggregate_type=aggregate.type_name,
                          aggregate_id=aggregate_id or uuid4())
        history = [_stored(registry, stream, n, e) for n, e in enumerate(events, start=1)]
        try:
            loaded = rehydrate(registry, aggregate, stream, None, history)
        except IntentError as error:
            raise ScenarioError(f"the given events do not fold: {error.message}") from None
        return Scenario(registry, aggregate, loaded)

    return given


class Scenario(Generic[StateT]):
    def __init__(self, registry: Registry, aggregate: type[Aggregate[StateT]],
                 loaded: Loaded[StateT]):
        self._registry = registry
        self._aggregate = aggregate
        self.loaded = loaded

    @property
    def state(self) -> StateT:
        return self.loaded.state

    def when(self, command: BaseModel, *, role: str = "authenticated") -> Outcome[StateT]:
        """Decide `command` (a payload model of a registered command type) on the given
        state; the outcome is checked by `then` or `then_rejected`."""
        envelope = self._envelope(command, role)
        try:
            events = decide(self._registry, envelope, self.loaded, now=NOW)
        except DomainRejection as rejection:
            return Outcome(self, None, rejection)
        except IntentError as error:
            raise ScenarioError(f"the registry refuses the command: {error.message}") from None
        return Outcome(self, events, None)

    def _envelope(self, command: BaseModel, role: str) -> Command:
        command_type = _command_type(self._registry, command)
        if role not in command_type.roles:
            raise ScenarioError(f"role {role!r} may not send {command_type.name}")
        return Command(
            command_id=uuid4(), command_type=command_type.name,
            payload=command.model_dump(mode="json"),
            metadata=Metadata(tenant_id=self.loaded.stream.tenant_id, role=role,
                              correlation_id=uuid4(), occurred_at=NOW),
        )


@dataclass
class Outcome(Generic[StateT]):
    scenario: Scenario[StateT]
    events: list[Event] | None
    rejection: DomainRejection | None

    def then(self, *expected: BaseModel) -> Loaded[StateT]:
        """The aggregate decided exactly these payloads, in this order; returns the state
        after them (folded as the store would, so `evolve` is exercised too)."""
        if self.rejection is not None:
            raise AssertionError(
                f"expected {_names(expected)}, but the command was rejected: "
                f"{self.rejection.code} ({self.rejection.reason})")
        assert self.events is not None
        registry = self.scenario._registry
        decided = [registry.load_event(e) for e in self.events]
        if decided != list(expected):
            raise AssertionError(
                f"expected {_describe(expected)}\n     got {_describe(decided)}")
        return evolve_all(registry, self.scenario._aggregate, self.scenario.loaded, self.events)

    def then_rejected(self, code: str) -> DomainRejection:
        """The aggregate said no, with this code; nothing was decided."""
        if self.rejection is None:
            decided = [self.scenario._registry.load_event(e) for e in self.events or []]
            raise AssertionError(f"expected rejection {code!r}, but decided {_describe(decided)}")
        if self.rejection.code != code:
            raise AssertionError(
                f"expected rejection {code!r}, got {self.rejection.code!r}: "
                f"{self.rejection.reason}")
        return self.rejection


def _stored(registry: Registry, stream: StreamId, version: int, given: Given) -> Event:
    """A given event as the store would hold it (checked against the registry)."""
    if isinstance(given, Stored):
        event_type, schema_version, payload = (
            given.event_type, given.schema_version, given.payload)
        if event_type not in registry.event_types():
            raise ScenarioError(f"given event {version}: {event_type} is not a registered type")
    else:
        try:
            known = registry.event_name(given)
        except IntentError as error:
            raise ScenarioError(f"given event {version}: {error.message}") from None
        event_type, schema_version = known.name, known.version
        payload = given.model_dump(mode="json")
        if known.payload_model.model_validate(payload) != given:
            raise ScenarioError(
                f"given event {version} ({event_type}) does not read back as itself from "
                f"its JSON: {payload}")
    return Event(
        event_id=uuid5(stream.aggregate_id, str(version)), event_type=event_type,
        schema_version=schema_version, stream=stream, version=version, payload=payload,
        metadata=Metadata(tenant_id=stream.tenant_id, correlation_id=stream.aggregate_id,
                          occurred_at=NOW),
    )


def _command_type(registry: Registry, command: BaseModel) -> CommandType:
    for command_type in registry.command_types().values():
        if type(command) is command_type.payload_model:
            return command_type
    raise ScenarioError(f"{type(command).__name__} is not a registered command payload model")


def _names(payloads: Sequence[BaseModel]) -> str:
    return ", ".join(type(p).__name__ for p in payloads) or "no events"


def _describe(payloads: Sequence[BaseModel]) -> str:
    return "[" + ", ".join(repr(p) for p in payloads) + "]"
