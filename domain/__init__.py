"""Intent's pure domain core: envelopes, errors, aggregates, the registry and the decider.

Nothing in this package does I/O; adapters (the store, the pump, the API) call into it.
"""

from __future__ import annotations

from domain.aggregate import Aggregate, StateT
from domain.contracts import (
    Command,
    Event,
    JsonObject,
    Metadata,
    Snapshot,
    StreamId,
    TypeName,
    check_type_name,
    utc_now,
)
from domain.decider import (
    Loaded,
    decide,
    event_id_for,
    evolve_all,
    rehydrate,
    snapshot_due,
    take_snapshot,
)
from domain.errors import (
    BadInput,
    ConcurrencyError,
    DomainRejection,
    Forbidden,
    IntentError,
    InvalidCommand,
    InvalidEvent,
    InvalidSnapshot,
    RegistryError,
    UnknownAggregateType,
    UnknownCommandType,
    UnknownEventType,
)
from domain.registry import CommandType, EventType, ParsedCommand, Registry

__all__ = [
    "Aggregate",
    "BadInput",
    "Command",
    "CommandType",
    "ConcurrencyError",
    "DomainRejection",
    "Event",
    "EventType",
    "Forbidden",
    "IntentError",
    "InvalidCommand",
    "InvalidEvent",
    "InvalidSnapshot",
    "JsonObject",
    "Loaded",
    "Metadata",
    "ParsedCommand",
    "Registry",
    "RegistryError",
    "Snapshot",
    "StateT",
    "StreamId",
    "TypeName",
    "UnknownAggregateType",
    "UnknownCommandType",
    "UnknownEventType",
    "check_type_name",
    "decide",
    "event_id_for",
    "evolve_all",
    "rehydrate",
    "snapshot_due",
    "take_snapshot",
    "utc_now",
]
