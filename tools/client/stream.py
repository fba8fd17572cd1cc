"""The pure part of client hydration: ordering, duplicates and gaps, with no I/O.

A live aggregate is a hydrated state (from `load_aggregate`) plus the events that arrive on
its Realtime topic. Realtime gives no ordering or delivery guarantee across a reconnect, and
a broadcast that is too large is dropped, so the client orders by the stream's `version`:

- an event at or below the current version is a duplicate (a replay, or already hydrated);
- the next version is applied, and then any buffered ones that now follow on;
- a later version is buffered: a message can overtake another briefly, so a jump is only
  a gap when it has not filled within a grace period (`overdue`), and then the client
  hydrates again;
- while a hydration is in flight every event is buffered, and the hydration's answer
  decides which of them are duplicates.

Time is passed in (`now`, seconds on any monotonic clock), so the logic is testable without
a clock or a network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

S = TypeVar("S")

DEFAULT_GRACE = 0.5  # seconds a version jump may wait to fill before it counts as a gap


@dataclass(frozen=True)
class StreamEvent:
    """One event of a stream, from a broadcast, a Postgres Changes row or load_aggregate."""

    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    version: int
    position: int
    schema_version: int
    payload: Mapping[str, Any]
    metadata: Mapping[str, Any]
    recorded_at: str | None = None


def event_from_json(
    data: Mapping[str, Any], aggregate_type: str | None = None, aggregate_id: str | None = None
) -> StreamEvent:
    """An event from a broadcast payload, an intent.events row (Postgres Changes `record`) or
    one of load_aggregate's events (which leave the aggregate out: pass it)."""
    return StreamEvent(
        event_id=str(data["event_id"]),
        event_type=str(data["event_type"]),
        aggregate_type=str(data.get("aggregate_type", aggregate_type)),
        aggregate_id=str(data.get("aggregate_id", aggregate_id)),
        version=int(data["version"]),
        position=int(data["position"]),
        schema_version=int(data.get("schema_version", 1)),
        payload=dict(data.get("payload") or {}),
        metadata=dict(data.get("metadata") or {}),
        recorded_at=None if data.get("recorded_at") is None else str(data["recorded_at"]),
    )


class Offer(Enum):
    """What happened to an offered event."""

    APPLIED = "applied"  # it (and maybe buffered followers) changed the state
    DUPLICATE = "duplicate"  # at or below the current version, or already buffered
    BUFFERED = "buffered"  # ahead of the next version, or a hydration is in flight
    FOREIGN = "foreign"  # another aggregate's event (a shared topic or a loose filter)


@dataclass
class StreamState(Generic[S]):
    """A state at a version, the events waiting to be applied, and whether a gap is open.

    `evolve(state, event) -> state` is the caller's; it is only ever called with the next
    version, once per version."""

    aggregate_type: str
    aggregate_id: str
    evolve: Callable[[S, StreamEvent], S]
    state: S
    version: int = 0
    grace: float = DEFAULT_GRACE
    hydrating: bool = True  # nothing is applied before the first hydration
    hydrations: int = 0
    applied: int = 0  # events applied since the last hydration
    pending: dict[int, StreamEvent] = field(default_factory=dict)
    waiting_since: float | None = None  # when the oldest unfilled jump was first seen

    def offer(self, event: StreamEvent, now: float) -> tuple[Offer, list[StreamEvent]]:
        """Take one live event; return what happened and the events applied (in order)."""
        if (event.aggregate_type, event.aggregate_id) != (self.aggregate_type,
                                                          self.aggregate_id):
            return Offer.FOREIGN, []
        if event.version <= self.version or event.version in self.pending:
            return Offer.DUPLICATE, []
        self.pending[event.version] = event
        if self.hydrating:
            return Offer.BUFFERED, []
        applied = self._drain()
        if self.pending and self.waiting_since is None:
            self.waiting_since = now
        return (Offer.APPLIED, applied) if applied else (Offer.BUFFERED, [])

    def overdue(self, now: float) -> bool:
        """True when a version jump has waited longer than the grace period: hydrate again."""
        return (not self.hydrating and self.waiting_since is not None
                and now - self.waiting_since >= self.grace)

    def due_at(self) -> float | None:
        """When `overdue` turns true if nothing arrives (for the caller's timer)."""
        if self.hydrating or self.waiting_since is None:
            return None
        return self.waiting_since + self.grace

    def begin_hydration(self) -> None:
        """A hydration starts (first load, gap, reconnect): buffer everything until it ends."""
        self.hydrating = True
        self.waiting_since = None

    def finish_hydration(self, state: S, version: int, now: float) -> list[StreamEvent]:
        """The hydration answered `state` at `version`: buffered events at or below it were
        already in it; the ones that follow on are applied now (and returned)."""
        self.state = state
        self.version = version
        self.hydrating = False
        self.hydrations += 1
        self.applied = 0
        self.pending = {v: e for v, e in self.pending.items() if v > version}
        applied = self._drain()
        self.waiting_since = now if self.pending else None
        return applied

    def _drain(self) -> list[StreamEvent]:
        applied: list[StreamEvent] = []
        while (event := self.pending.pop(self.version + 1, None)) is not None:
            self.state = self.evolve(self.state, event)
            self.version = event.version
            self.applied += 1
            applied.append(event)
        if applied:
            # What still waits is a new jump (or the old one, not yet filled): its clock
            # starts now, so a jump is never judged by the wait of one already closed.
            self.waiting_since = None
        return applied


def fold_hydration(
    answer: Mapping[str, Any],
    pages: Sequence[Mapping[str, Any]],
    evolve: Callable[[S, StreamEvent], S],
    initial: S,
    from_snapshot: Callable[[Mapping[str, Any]], S],
) -> tuple[S, int]:
    """The state and version from a load_aggregate answer and the read_stream pages that
    continue it (when its tail stopped short of the head: `next_version`)."""
    snapshot = answer.get("snapshot")
    state = from_snapshot(snapshot) if snapshot else initial
    version = int(snapshot["version"]) if snapshot else 0
    aggregate_type = str(answer["aggregate_type"])
    aggregate_id = str(answer["aggregate_id"])
    for part in (answer, *pages):
        for raw in part.get("events") or []:
            event = event_from_json(raw, aggregate_type, aggregate_id)
            if event.version != version + 1:
                raise ValueError(
                    f"hydration is not contiguous: version {event.version} after {version}"
                )
            state = evolve(state, event)
            version = event.version
    return state, version


def snapshot_state(snapshot: Mapping[str, Any]) -> Any:
    """The default `from_snapshot`: the snapshot's JSON state as stored."""
    return snapshot["state"]


@dataclass
class TenantState:
    """Following all of a tenant's events (a read model, an activity feed): per-aggregate
    versions tell duplicates and gaps; ordering across aggregates is not promised, so
    events are passed on as they come and a gap asks the caller to resync."""

    versions: dict[tuple[str, str], int] = field(default_factory=dict)

    def offer(self, event: StreamEvent) -> Offer | None:
        """APPLIED (pass it on), DUPLICATE (drop it) or None: a gap before it (resync; the
        event is passed on too, and its version becomes the aggregate's known one)."""
        key = (event.aggregate_type, event.aggregate_id)
        known = self.versions.get(key)
        if known is not None and event.version <= known:
            return Offer.DUPLICATE
        self.versions[key] = event.version
        if known is not None and event.version > known + 1:
            return None
        return Offer.APPLIED

    def reset(self) -> None:
        """After a resync every aggregate's version is unknown again."""
        self.versions.clear()
