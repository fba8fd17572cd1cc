"""Sagas as pure definitions: what events start and feed them, and what they do in answer.

A saga never writes anything itself. `react` (to an event) and `on_timer` (when a timer it
started fires) return its next state and a list of actions; the runtime carries them out:
it issues commands (through the same pump as every other command, with ids derived from
the saga and a key, so a replayed step never issues twice), keeps durable timers, and ends
the saga. Compensation is just a later step that issues the commands undoing an earlier one.

A saga decides on facts, not on its view of them: its view lags the store (events reach it
through the router, later, maybe after an outage), so a timer or a reaction must not
compensate on what the saga has not seen yet. It issues the command that the aggregate may
refuse (cancel the order) and compensates when the aggregate's event says it happened
(`order_cancelled`); a refusal leaves the aggregate's other fact to arrive (`order_paid`).

The runtime keeps a saga's history bounded: a long-lived instance continues as new with its
state, its timers (their fire times, not restarted), the ids of the latest events applied
and the events not applied yet, so `react` and `on_timer` see nothing of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid5

from pydantic import BaseModel

from domain.contracts import Event, check_type_name
from domain.errors import RegistryError

SagaStateT = TypeVar("SagaStateT", bound=BaseModel)

# Namespace of the ids of commands that sagas issue (uuid5 of saga, instance and key).
SAGA_COMMANDS = UUID("8f0b3c1e-6a0c-4f8e-9a53-1d7c2b6e4a10")


@dataclass(frozen=True)
class IssueCommand:
    """Issue a command; `key` names this step within the saga instance (its idempotency)."""

    command_type: str
    payload: Mapping[str, Any]
    key: str


@dataclass(frozen=True)
class StartTimer:
    """Start (or restart) a durable timer; the runtime may shorten `after` by configuration."""

    name: str
    after: timedelta


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Complete:
    outcome: str


Action = IssueCommand | StartTimer | CancelTimer | Complete


class Saga(Generic[SagaStateT]):
    """Subclass per saga; set the class variables and override `instance_of`, `react` and
    `on_timer`. Like aggregates, sagas are namespaces of pure class methods."""

    name: ClassVar[str]
    state_model: ClassVar[type[SagaStateT]]
    starts_on: ClassVar[frozenset[str]]  # event types that may start an instance
    feeds_on: ClassVar[frozenset[str]] = frozenset()  # further event types it listens to

    @classmethod
    def initial_state(cls) -> SagaStateT:
        return cls.state_model()

    @classmethod
    def instance_of(cls, event: BaseModel) -> str | None:
        """Which instance an event belongs to (e.g. the order id); None: not this saga's."""
        raise NotImplementedError

    @classmethod
    def react(
        cls, state: SagaStateT, event: BaseModel
    ) -> tuple[SagaStateT, Sequence[Action]]:
        return state, []

    @classmethod
    def on_timer(cls, state: SagaStateT, timer: str) -> tuple[SagaStateT, Sequence[Action]]:
        return state, []

    @classmethod
    def listens_to(cls) -> frozenset[str]:
        return cls.starts_on | cls.feeds_on


def saga_command_id(saga: str, tenant_id: UUID, instance: str, key: str) -> UUID:
    """The id of a command a saga issues: the same step of the same instance, the same id."""
    return uuid5(SAGA_COMMANDS, f"{saga}/{tenant_id}/{instance}/{key}")


def saga_workflow_id(saga: str, tenant_id: UUID, instance: str) -> str:
    return f"intent-saga-{saga}-{tenant_id}-{instance}"


class SagaRegistry:
    def __init__(self, sagas: Iterable[type[Saga[Any]]] = ()) -> None:
        self._sagas: dict[str, type[Saga[Any]]] = {}
        for saga in sagas:
            self.add(saga)

    def add(self, saga: type[Saga[Any]]) -> None:
        try:
            check_type_name(saga.name)
        except ValueError as exc:
            raise RegistryError(f"saga name: {exc}") from exc
        if saga.name in self._sagas:
            raise RegistryError(f"saga {saga.name!r} is registered twice")
        if not saga.starts_on:
            raise RegistryError(f"saga {saga.name!r} has no event that starts it")
        self._sagas[saga.name] = saga

    def remove(self, name: str) -> None:
        """Forget a saga (for tests that register one of their own for a while)."""
        self._sagas.pop(name, None)

    def get(self, name: str) -> type[Saga[Any]]:
        try:
            return self._sagas[name]
        except KeyError:
            raise RegistryError(f"no saga named {name!r}") from None

    def interested_in(self, event: Event) -> list[type[Saga[Any]]]:
        return [s for s in self._sagas.values() if event.event_type in s.listens_to()]

    def __iter__(self) -> Any:
        return iter(self._sagas.values())
