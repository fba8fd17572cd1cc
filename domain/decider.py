"""The write path as pure functions: load state from facts, decide on a command, snapshot.

Everything here works on values handed in by the caller (the store adapter) and returns new
values; reading and appending events is the adapter's business. That keeps the rules about
versions, causation and event ids in one place, testable without a database.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from typing import Any, Generic
from uuid import UUID, uuid5

from pydantic import ValidationError

from domain.aggregate import Aggregate, StateT
from domain.contracts import Command, Event, Snapshot, StreamId
from domain.errors import (
    BadInput,
    InvalidCommand,
    InvalidEvent,
    InvalidSnapshot,
    validation_problems,
)
from domain.registry import ParsedCommand, Registry


@dataclass(frozen=True)
class Loaded(Generic[StateT]):
    """An aggregate's state after `version` events of `stream` (0: the stream is empty)."""

    stream: StreamId
    state: StateT
    version: int


def event_id_for(command_id: UUID, index: int) -> UUID:
    """The id of the `index`-th event a command causes.

    Derived, not random, so that a retried command yields the same ids and the store's
    unique event id refuses to record the same effect twice.
    """
    return uuid5(command_id, str(index))


def rehydrate(
    registry: Registry,
    aggregate: type[Aggregate[StateT]],
    stream: StreamId,
    snapshot: Snapshot | None,
    events: Iterable[Event],
) -> Loaded[StateT]:
    """Fold a stream's events, optionally on top of a snapshot, into its current state.

    Events the snapshot already covers are skipped, so the caller may pass the whole stream.
    An `InvalidSnapshot` means: call again without the snapshot.
    """
    start = starting_point(aggregate, stream, snapshot)
    return _fold(registry, aggregate, start, events, skip_covered=True)


def starting_point(
    aggregate: type[Aggregate[StateT]], stream: StreamId, snapshot: Snapshot | None
) -> Loaded[StateT]:
    """Where a fold of `stream` starts: the snapshot's state, or the initial state at 0."""
    _check_aggregate(aggregate, stream)
    if snapshot is None:
        return Loaded(stream=stream, state=aggregate.initial_state(), version=0)
    return Loaded(
        stream=stream, state=_restore(aggregate, stream, snapshot), version=snapshot.version
    )


def decide(
    registry: Registry,
    command: Command | ParsedCommand,
    loaded: Loaded[Any],
    *,
    event_ids: Callable[[], UUID] | None = None,
    now: datetime | None = None,
    traceparent: str | None = None,
) -> list[Event]:
    """Ask the target aggregate about a command; the events to append, in order.

    New events are stamped with their type's current schema version, number on from
    `loaded.version`, and carry the command's metadata with the command as their cause
    (and `traceparent`, the span that decided them, when tracing gives one).
    """
    parsed = command if isinstance(command, ParsedCommand) else registry.parse_command(command)
    if parsed.stream != loaded.stream:
        raise InvalidCommand(
            f"{parsed.command_type.name} targets {parsed.stream}, but {loaded.stream} was loaded",
            command_type=parsed.command_type.name,
        )
    payloads = list(parsed.command_type.aggregate.decide(parsed.payload, loaded.state))
    if not payloads:
        return []
    envelope = parsed.envelope
    metadata = envelope.metadata.caused_by(envelope.command_id, at=now, traceparent=traceparent)
    next_id = event_ids or _derived_ids(envelope.command_id)
    events: list[Event] = []
    for index, payload in enumerate(payloads):
        event_type = registry.event_name(payload)
        events.append(
            Event.decided(
                event_id=next_id(),
                event_type=event_type.name,
                schema_version=event_type.version,
                stream=loaded.stream,
                version=loaded.version + index + 1,
                typed=payload,
                metadata=metadata,
            )
        )
    return events


def evolve_all(
    registry: Registry,
    aggregate: type[Aggregate[StateT]],
    loaded: Loaded[StateT],
    events: Iterable[Event],
) -> Loaded[StateT]:
    """Apply events that continue `loaded`, e.g. the ones `decide` just returned.

    Events `decide` made are evolved with the typed payloads the aggregate returned, not
    validated a second time; any other event goes through the same path as a stored one.
    """
    _check_aggregate(aggregate, loaded.stream)
    return _fold(registry, aggregate, loaded, events, skip_covered=False)


def snapshot_due(aggregate: type[Aggregate[Any]], before: int, after: int) -> bool:
    """Whether moving the stream from `before` to `after` crossed a snapshot point."""
    every = aggregate.snapshot_every
    if every is None or after <= before:
        return False
    return after // every > before // every


def take_snapshot(aggregate: type[Aggregate[StateT]], loaded: Loaded[StateT]) -> Snapshot:
    _check_aggregate(aggregate, loaded.stream)
    if loaded.version < 1:
        raise InvalidSnapshot(f"{loaded.stream} has no events: there is nothing to snapshot")
    return Snapshot(
        stream=loaded.stream,
        version=loaded.version,
        schema_version=aggregate.state_schema_version,
        state=loaded.state.model_dump(mode="json"),
    )


def _derived_ids(command_id: UUID) -> Callable[[], UUID]:
    indexes = count()
    return lambda: event_id_for(command_id, next(indexes))


def _check_aggregate(aggregate: type[Aggregate[Any]], stream: StreamId) -> None:
    if stream.aggregate_type != aggregate.type_name:
        raise BadInput(
            f"{stream} is not a stream of {aggregate.type_name}",
            stream=str(stream),
            aggregate_type=aggregate.type_name,
        )


def _restore(aggregate: type[Aggregate[StateT]], stream: StreamId, snapshot: Snapshot) -> StateT:
    if snapshot.stream != stream:
        raise InvalidSnapshot(f"snapshot of {snapshot.stream} offered for {stream}")
    current = aggregate.state_schema_version
    state = snapshot.state
    if snapshot.schema_version > current:
        raise InvalidSnapshot(
            f"snapshot of {stream} has state schema version {snapshot.schema_version}, "
            f"newer than {current}",
            schema_version=snapshot.schema_version,
        )
    if snapshot.schema_version < current:
        try:
            state = aggregate.upcast_state(copy.deepcopy(state), snapshot.schema_version)
        except InvalidSnapshot:
            raise
        except Exception as error:  # whatever the hook trips on, the snapshot is unusable
            raise InvalidSnapshot(
                f"snapshot of {stream}: upcasting state from v{snapshot.schema_version} "
                f"failed: {error!r}"
            ) from error
    try:
        return aggregate.state_model.model_validate(state)
    except ValidationError as error:
        raise InvalidSnapshot(
            f"snapshot of {stream} does not fit {aggregate.state_model.__name__}",
            errors=validation_problems(error),
        ) from None


def _fold(
    registry: Registry,
    aggregate: type[Aggregate[StateT]],
    start: Loaded[StateT],
    events: Iterable[Event],
    *,
    skip_covered: bool,
) -> Loaded[StateT]:
    state, version = start.state, start.version
    previous: int | None = None
    for event in events:
        if event.stream is not start.stream and event.stream != start.stream:
            raise InvalidEvent(
                f"event {event.event_id} belongs to {event.stream}, not {start.stream}",
                event_id=str(event.event_id),
            )
        if previous is not None and event.version != previous + 1:
            raise out_of_sequence(start.stream, previous + 1, event.version, event.event_id)
        previous = event.version
        if skip_covered and event.version <= start.version:
            continue
        if event.version != version + 1:
            raise out_of_sequence(start.stream, version + 1, event.version, event.event_id)
        state = aggregate.evolve(state, registry.load_event(event))
        version = event.version
    return Loaded(stream=start.stream, state=state, version=version)


def out_of_sequence(
    stream: StreamId, expected: int, actual: int, event_id: UUID | str
) -> InvalidEvent:
    """The error for a stream whose versions skip or repeat where `expected` was due."""
    problem = "duplicate" if actual < expected else "gap"
    return InvalidEvent(
        f"{stream}: {problem} in the event sequence: expected version {expected}, "
        f"got {actual} (event {event_id})",
        problem=problem,
        stream=str(stream),
        expected=expected,
        actual=actual,
        event_id=str(event_id),
    )
