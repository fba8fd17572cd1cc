"""Given/when/then for aggregates and sagas: what a slice author's unit tests are written with.

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

Sagas the same way: `saga_scenarios(registry)(Saga, *events)` reacts to the events (the first
must start the saga, every one must be one it listens to, all of one instance), then `.then(
*actions)` checks the last step's actions, `.when(event)` and `.when_timer(name)` take the next
step (a timer must be running to fire), and every command the saga issues is checked against
the registry (a known type, a payload its model accepts, a key not used before).

Pure, like the rest of `domain`: no database, no clock (`NOW` stamps every envelope).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic
from uuid import UUID, uuid4, uuid5

from pydantic import BaseModel

from domain.aggregate import Aggregate, StateT
from domain.contracts import Command, Event, Metadata, StreamId
from domain.decider import Loaded, decide, evolve_all, rehydrate
from domain.errors import DomainRejection, IntentError
from domain.registry import CommandType, Registry
from domain.saga import Action, CancelTimer, Complete, IssueCommand, Saga, StartTimer

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

    def when(self, command: BaseModel, *, role: str = "authenticated",
             user: UUID | None = None) -> Outcome[StateT]:
        """Decide `command` (a payload model of a registered command type) on the given
        state, sent as `role` by `user` (the verified sender: what a command type's actor
        field gets); the outcome is checked by `then` or `then_rejected`."""
        envelope = self._envelope(command, role, user)
        try:
            events = decide(self._registry, envelope, self.loaded, now=NOW)
        except DomainRejection as rejection:
            return Outcome(self, None, rejection)
        except IntentError as error:
            raise ScenarioError(f"the registry refuses the command: {error.message}") from None
        return Outcome(self, events, None)

    def _envelope(self, command: BaseModel, role: str, user: UUID | None) -> Command:
        command_type = _command_type(self._registry, command)
        if role not in command_type.roles:
            raise ScenarioError(f"role {role!r} may not send {command_type.name}")
        return Command(
            command_id=uuid4(), command_type=command_type.name,
            payload=command.model_dump(mode="json"),
            metadata=Metadata(tenant_id=self.loaded.stream.tenant_id, role=role, user_id=user,
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


# -- sagas ---------------------------------------------------------------------------------


def saga_scenarios(registry: Registry, *, tenant_id: UUID = TENANT
                   ) -> Callable[..., SagaRun]:
    """`given(Saga, *events)` bound to one application's registry."""

    def given(saga: type[Saga[Any]], *events: BaseModel) -> SagaRun:
        if not events:
            raise ScenarioError(f"{saga.name}: give at least the event that starts it")
        run = SagaRun(registry, saga, tenant_id)
        for event in events:
            run = run.when(event)
        return run

    return given


@dataclass(frozen=True)
class SagaRun:
    """A saga instance after some steps: its state, running timers, the last step's actions."""

    registry: Registry
    saga: type[Saga[Any]]
    tenant_id: UUID
    state: Any = None
    instance: str | None = None
    timers: tuple[tuple[str, timedelta], ...] = ()
    keys: frozenset[str] = frozenset()
    actions: tuple[Action, ...] = ()
    outcome: str | None = None
    steps: int = 0

    def when(self, event: BaseModel) -> SagaRun:
        """The saga reacts to `event` (a registered event payload)."""
        name = self._event_type(event)
        if self.steps == 0 and name not in self.saga.starts_on:
            raise ScenarioError(f"{self.saga.name} is not started by {name}")
        if name not in self.saga.listens_to():
            raise ScenarioError(f"{self.saga.name} does not listen to {name}")
        instance = self.saga.instance_of(event)
        if instance is None or (self.instance is not None and instance != self.instance):
            raise ScenarioError(
                f"{name} belongs to instance {instance!r}, not to {self.instance!r}")
        state = self.saga.initial_state() if self.steps == 0 else self.state
        return self._step(*self.saga.react(state, event), instance=instance)

    def when_timer(self, timer: str) -> SagaRun:
        """The timer fires (it must be running)."""
        if timer not in dict(self.timers):
            raise ScenarioError(f"timer {timer!r} is not running (running: "
                                f"{sorted(dict(self.timers)) or 'none'})")
        left = tuple((n, a) for n, a in self.timers if n != timer)
        fired = SagaRun(**{**self.__dict__, "timers": left})
        return fired._step(*self.saga.on_timer(self.state, timer), instance=self.instance)

    def then(self, *expected: Action) -> SagaRun:
        """The last step's actions were exactly these, in this order."""
        if list(self.actions) != list(expected):
            raise AssertionError(f"expected {list(expected)}\n     got {list(self.actions)}")
        return self

    def _step(self, state: Any, actions: Sequence[Action], *, instance: str | None) -> SagaRun:
        if self.outcome is not None:
            raise ScenarioError(f"{self.saga.name} completed ({self.outcome}) and takes no "
                                "further steps")
        timers, keys, outcome = dict(self.timers), set(self.keys), None
        for action in actions:
            if isinstance(action, IssueCommand):
                self._check_command(action, keys)
                keys.add(action.key)
            elif isinstance(action, StartTimer):
                timers[action.name] = action.after
            elif isinstance(action, CancelTimer):
                timers.pop(action.name, None)
            elif isinstance(action, Complete):
                outcome, timers = action.outcome, {}
        return SagaRun(self.registry, self.saga, self.tenant_id, state, instance,
                       tuple(sorted(timers.items())), frozenset(keys), tuple(actions), outcome,
                       self.steps + 1)

    def _check_command(self, action: IssueCommand, keys: set[str]) -> None:
        if action.key in keys:
            raise ScenarioError(f"{self.saga.name} issues a second command with key "
                                f"{action.key!r}: the runtime would treat it as the first")
        try:
            command_type = self.registry.command_type(action.command_type)
            command_type.payload_model.model_validate(dict(action.payload))
        except IntentError as error:
            raise ScenarioError(f"{self.saga.name} issues a command the registry refuses: "
                                f"{error.message}") from None
        except ValueError as error:
            raise ScenarioError(f"{self.saga.name} issues {action.command_type} with a "
                                f"payload its model refuses: {error}") from None

    def _event_type(self, event: BaseModel) -> str:
        """The event's registered type; it must read back as itself, as the router reads it."""
        try:
            known = self.registry.event_name(event)
        except IntentError as error:
            raise ScenarioError(error.message) from None
        if known.payload_model.model_validate(event.model_dump(mode="json")) != event:
            raise ScenarioError(f"{known.name} does not read back as itself from its JSON")
        return known.name
