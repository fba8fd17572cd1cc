"""What the application knows: its event, command and aggregate types, and how to read old events.

Envelopes carry plain JSON; the registry is the one place that turns a type name into a
payload model, a target stream and a set of allowed roles. Slices build their own registry
and the application composes them with `include`, then calls `validate` once at import time
so that declaration mistakes surface before the first request does.

Payload models are validated in pydantic's lax mode from JSON-shaped dicts, so they must not
be strict (a strict UUID field would refuse the string it was stored as).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from domain.aggregate import Aggregate
from domain.bounds import first_violation
from domain.contracts import Command, Event, JsonObject, StreamId, check_type_name
from domain.errors import (
    Forbidden,
    InvalidCommand,
    InvalidEvent,
    RegistryError,
    UnknownAggregateType,
    UnknownCommandType,
    UnknownEventType,
    summarise,
    validation_problems,
)
from domain.senders import bound_payload, check_sender_fields
from domain.upcasting import Upcaster, run_upcasters

P = TypeVar("P", bound=BaseModel)
A = TypeVar("A", bound=type[Aggregate[Any]])
F = TypeVar("F", bound=Upcaster)


@dataclass(frozen=True)
class EventType:
    name: str
    payload_model: type[BaseModel]
    version: int  # the current schema version: stamped on every new event of this type


@dataclass(frozen=True)
class CommandType:
    name: str
    payload_model: type[BaseModel]
    aggregate: type[Aggregate[Any]]
    aggregate_id_field: str  # the payload field (a UUID) naming the target aggregate
    roles: frozenset[str]
    actor_field: str | None = None  # filled with the sender's user id (domain.senders)
    tenant_field: str | None = None  # names the tenant it is filed under (domain.senders)


@dataclass(frozen=True)
class ParsedCommand:
    """A command whose payload passed its model and whose target stream is known."""

    envelope: Command
    command_type: CommandType
    payload: BaseModel
    stream: StreamId


def _type_name(kind: str, name: str) -> str:
    try:
        return check_type_name(name)
    except ValueError as error:
        raise RegistryError(f"{kind} name: {error}", name=name) from error


def _version(what: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RegistryError(f"{what} must be an integer >= 1, got {value!r}")
    return value


class Registry:
    """Declared types of one slice, or of the whole application once slices are included."""

    def __init__(self) -> None:
        self._events: dict[str, EventType] = {}
        self._event_by_model: dict[type[BaseModel], EventType] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._commands: dict[str, CommandType] = {}
        self._aggregates: dict[str, type[Aggregate[Any]]] = {}

    # -- declaring -------------------------------------------------------------------------

    def event(self, name: str, *, version: int = 1) -> Callable[[type[P]], type[P]]:
        """Declare an event payload model; `version` is its current schema version."""
        _type_name("event type", name)
        _version(f"event type {name}: version", version)

        def register(model: type[P]) -> type[P]:
            self._add_event(EventType(name=name, payload_model=model, version=version))
            return model

        return register

    def upcaster(self, name: str, *, from_version: int) -> Callable[[F], F]:
        """Declare how a payload of `name` moves from `from_version` to `from_version + 1`."""
        _type_name("event type", name)
        _version(f"upcaster for {name}: from_version", from_version)

        def register(function: F) -> F:
            self._add_upcaster(name, from_version, function)
            return function

        return register

    def command(
        self,
        name: str,
        *,
        aggregate: type[Aggregate[Any]],
        aggregate_id: str,
        roles: Iterable[str],
        actor: str | None = None,
        tenant: str | None = None,
    ) -> Callable[[type[P]], type[P]]:
        """Declare a command payload model, the aggregate it targets and who may send it;
        `actor` and `tenant` name the fields the platform vouches for (domain.senders)."""
        _type_name("command type", name)
        if not (isinstance(aggregate, type) and issubclass(aggregate, Aggregate)):
            raise RegistryError(f"command type {name}: {aggregate!r} is not an Aggregate")
        allowed = frozenset(roles)
        if not allowed or not all(isinstance(role, str) and role for role in allowed):
            raise RegistryError(f"command type {name}: roles must be non-empty strings")

        def register(model: type[P]) -> type[P]:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise RegistryError(f"command type {name}: payload must be a pydantic model")
            field = model.model_fields.get(aggregate_id)
            if field is None or field.annotation is not UUID:
                raise RegistryError(
                    f"command type {name}: {model.__name__} needs a UUID field "
                    f"{aggregate_id!r} naming the target aggregate"
                )
            check_sender_fields(name, model, actor, tenant)
            self._add_command(
                CommandType(
                    name=name,
                    payload_model=model,
                    aggregate=aggregate,
                    aggregate_id_field=aggregate_id,
                    roles=allowed,
                    actor_field=actor,
                    tenant_field=tenant,
                )
            )
            return model

        return register

    def aggregate(self, cls: A) -> A:
        """Declare an aggregate type (usable as a class decorator)."""
        if not (isinstance(cls, type) and issubclass(cls, Aggregate)):
            raise RegistryError(f"{cls!r} is not an Aggregate")
        name = getattr(cls, "type_name", None)
        if not isinstance(name, str):
            raise RegistryError(f"aggregate {cls.__name__} has no type_name")
        _type_name("aggregate type", name)
        model = getattr(cls, "state_model", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise RegistryError(f"aggregate {name}: state_model must be a pydantic model")
        _version(f"aggregate {name}: state_schema_version", cls.state_schema_version)
        if cls.snapshot_every is not None:
            _version(f"aggregate {name}: snapshot_every", cls.snapshot_every)
        self._add_aggregate(cls)
        return cls

    def include(self, other: Registry) -> None:
        """Add everything another registry declares. All or nothing: a clash changes nothing."""
        clashes = [
            *(f"event type {n}" for n in other._events if n in self._events),
            *(
                f"event model {m.__name__}"
                for m in other._event_by_model
                if m in self._event_by_model
            ),
            *(f"upcaster {n} v{v}" for n, v in other._upcasters if (n, v) in self._upcasters),
            *(f"command type {n}" for n in other._commands if n in self._commands),
            *(f"aggregate type {n}" for n in other._aggregates if n in self._aggregates),
        ]
        if clashes:
            raise RegistryError(
                "cannot include registry, declared twice: " + ", ".join(clashes),
                duplicates=clashes,
            )
        self._events.update(other._events)
        self._event_by_model.update(other._event_by_model)
        self._upcasters.update(other._upcasters)
        self._commands.update(other._commands)
        self._aggregates.update(other._aggregates)

    def validate(self) -> None:
        """Check the declarations fit together; raises one RegistryError listing every problem."""
        problems: list[str] = []
        for command in self._commands.values():
            target = command.aggregate
            if self._aggregates.get(target.type_name) is not target:
                problems.append(
                    f"command type {command.name} targets aggregate {target.type_name}, "
                    f"which is not registered"
                )
        for event in self._events.values():
            problems.extend(
                f"event type {event.name} has no upcaster from version {v} to {v + 1}"
                for v in range(1, event.version)
                if (event.name, v) not in self._upcasters
            )
        for name, from_version in self._upcasters:
            known = self._events.get(name)
            if known is None:
                problems.append(f"upcaster for unknown event type {name}")
            elif from_version >= known.version:
                problems.append(
                    f"upcaster {name} v{from_version} goes beyond the current "
                    f"version {known.version}"
                )
        for aggregate in self._aggregates.values():
            try:
                state = aggregate.initial_state()
            except Exception as error:  # any failure here is a declaration mistake
                problems.append(f"aggregate {aggregate.type_name}: initial_state failed: {error}")
                continue
            if not isinstance(state, aggregate.state_model):
                problems.append(
                    f"aggregate {aggregate.type_name}: initial_state is not a "
                    f"{aggregate.state_model.__name__}"
                )
        if problems:
            raise RegistryError("invalid registry: " + "; ".join(problems), problems=problems)

    # -- looking up ------------------------------------------------------------------------

    def aggregate_type(self, name: str) -> type[Aggregate[Any]]:
        try:
            return self._aggregates[name]
        except KeyError:
            raise UnknownAggregateType(
                f"unknown aggregate type {name!r}", aggregate_type=name
            ) from None

    def aggregate_types(self) -> Mapping[str, type[Aggregate[Any]]]:
        return MappingProxyType(self._aggregates)

    def command_types(self) -> Mapping[str, CommandType]:
        return MappingProxyType(self._commands)

    def event_types(self) -> Mapping[str, EventType]:
        return MappingProxyType(self._events)

    def has_upcaster(self, name: str, from_version: int) -> bool:
        """Whether `name` payloads of `from_version` can be moved on (the schema lock asks)."""
        return (name, from_version) in self._upcasters

    def command_type(self, name: str) -> CommandType:
        try:
            return self._commands[name]
        except KeyError:
            raise UnknownCommandType(f"unknown command type {name!r}", command_type=name) from None

    def event_type(self, name: str) -> EventType:
        try:
            return self._events[name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {name!r}", event_type=name) from None

    def event_name(self, payload: BaseModel) -> EventType:
        """The registered type of a payload an aggregate decided on."""
        try:
            return self._event_by_model[type(payload)]
        except KeyError:
            raise RegistryError(
                f"{type(payload).__name__} is not a registered event payload model"
            ) from None

    # -- reading input ---------------------------------------------------------------------

    def parse_command(self, command: Command) -> ParsedCommand:
        """Validate the payload and work out the target stream (tenant comes from metadata)."""
        command_type = self.command_type(command.command_type)
        out_of_bounds = first_violation(command.payload)
        if out_of_bounds is not None:
            raise InvalidCommand(
                f"{command_type.name}: invalid payload: {out_of_bounds.field}:"
                f" {out_of_bounds.message}",
                command_type=command_type.name,
                errors=[{"field": out_of_bounds.field, "message": out_of_bounds.message,
                         "type": "out_of_bounds"}],
            )
        raw = command.payload
        if command_type.actor_field or command_type.tenant_field:
            raw = bound_payload(command_type.name, command_type.actor_field,
                                command_type.tenant_field, command)
        try:
            payload = command_type.payload_model.model_validate(raw)
        except ValidationError as error:
            problems = validation_problems(error)
            raise InvalidCommand(
                f"{command_type.name}: invalid payload: {summarise(problems)}",
                command_type=command_type.name,
                errors=problems,
            ) from None
        aggregate_id = getattr(payload, command_type.aggregate_id_field)
        stream = StreamId(
            tenant_id=command.metadata.tenant_id,
            aggregate_type=command_type.aggregate.type_name,
            aggregate_id=aggregate_id,
        )
        return ParsedCommand(
            envelope=command, command_type=command_type, payload=payload, stream=stream
        )

    def check_role(self, command_type: str, role: str) -> None:
        allowed = self.command_type(command_type).roles
        if role not in allowed:
            raise Forbidden(
                f"role {role!r} may not send {command_type}",
                command_type=command_type,
                role=role,
            )

    def upcast(
        self, event_type: str, schema_version: int, payload: JsonObject
    ) -> tuple[int, JsonObject]:
        """Run a stored payload through the upcaster chain up to the current version.

        The caller's dict is never modified; the result is a new dict.
        """
        known = self.event_type(event_type)
        if schema_version < 1 or schema_version > known.version:
            raise InvalidEvent(
                f"{event_type}: schema version {schema_version} is outside "
                f"1..{known.version} (was it written by newer code?)",
                event_type=event_type,
                schema_version=schema_version,
            )
        if schema_version == known.version:
            return known.version, dict(payload)
        return known.version, run_upcasters(event_type, schema_version, known.version,
                                             payload, self._upcasters)

    def load_event(self, event: Event) -> BaseModel:
        """The typed payload of a stored event, whatever schema version it was written in
        (for an event `decide` just made, the model it was made from)."""
        decided = event.decided_payload()
        if decided is not None:
            known = self._events.get(event.event_type)
            if (known is not None and known.version == event.schema_version
                    and type(decided) is known.payload_model):
                return decided
        return self.load_payload(
            event.event_type, event.schema_version, event.payload, event=str(event.event_id)
        )

    def load_payload(
        self, event_type: str, schema_version: int, payload: JsonObject, *, event: str
    ) -> BaseModel:
        """A stored payload as its current model: upcast, then validated. `event` names the
        event in an error (its id, or its version in a stream)."""
        try:
            _, current = self.upcast(event_type, schema_version, payload)
        except InvalidEvent as error:
            raise InvalidEvent(
                f"event {event}: {error.message}", **{**error.details, "event": event}
            ) from error.__cause__
        model = self._events[event_type].payload_model
        try:
            return model.model_validate(current)
        except ValidationError as error:
            problems = validation_problems(error)
            raise InvalidEvent(
                f"{event_type} event {event} does not fit its model: {summarise(problems)}",
                event_type=event_type,
                event=event,
                errors=problems,
            ) from None

    # -- internals -------------------------------------------------------------------------

    def _add_event(self, event: EventType) -> None:
        if event.name in self._events:
            raise RegistryError(f"event type {event.name} declared twice", name=event.name)
        model = event.payload_model
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise RegistryError(f"event type {event.name}: payload must be a pydantic model")
        if event.payload_model in self._event_by_model:
            other = self._event_by_model[event.payload_model].name
            raise RegistryError(
                f"{event.payload_model.__name__} is already the payload of {other}",
                name=event.name,
            )
        self._events[event.name] = event
        self._event_by_model[event.payload_model] = event

    def _add_upcaster(self, name: str, from_version: int, function: Upcaster) -> None:
        if (name, from_version) in self._upcasters:
            raise RegistryError(f"upcaster {name} v{from_version} declared twice", name=name)
        self._upcasters[(name, from_version)] = function

    def _add_command(self, command: CommandType) -> None:
        if command.name in self._commands:
            raise RegistryError(f"command type {command.name} declared twice", name=command.name)
        self._commands[command.name] = command

    def _add_aggregate(self, cls: type[Aggregate[Any]]) -> None:
        if cls.type_name in self._aggregates:
            raise RegistryError(
                f"aggregate type {cls.type_name} declared twice", name=cls.type_name
            )
        self._aggregates[cls.type_name] = cls
