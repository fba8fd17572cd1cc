"""What crosses Temporal for sagas: plain pydantic models (sandbox-safe)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.contracts import Event

SAGA_WORKFLOW = "intent.saga"
SAGA_EVENT_SIGNAL = "event"
ISSUE_COMMAND = "intent.issue_saga_command"
RECORD_INSTANCE = "intent.record_saga_instance"
# The patch id of the instance records (`workflow.patched`): a workflow that began its run
# before the records existed replays without them, and records from its next run on.
RECORD_INSTANCE_PATCH = "intent.saga-instance-records"

# A run continues as new once its history holds this many events (or Temporal suggests it):
# well below Temporal's limits (warning at 10,240 events), and a replay stays cheap.
DEFAULT_HISTORY_LIMIT = 2_000
MIN_HISTORY_LIMIT = 50  # room for at least one step per run
# How many of the latest applied event ids a saga keeps to drop redeliveries. The router
# delivers in feed order and redelivers at most what followed its checkpoint (a page), so an
# event older than all of these was applied already (see `AppliedWindow.floor`).
DEFAULT_APPLIED_WINDOW = 1_000
# How many of the latest issued command ids a saga keeps for its outcome.
ISSUED_KEPT = 1_000


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# Where an event is in the global feed: (transaction id, position), ordered like the feed.
FeedSpot = tuple[int, int]


class AppliedWindow(_Model):
    """The latest applied event ids with their feed spots, oldest first, and the latest spot
    of those that dropped out (`floor`): every event at or before it was applied already."""

    latest: list[tuple[UUID, FeedSpot | None]] = Field(default_factory=list)
    floor: FeedSpot | None = None


class SagaCarry(_Model):
    """What one run of a saga hands to the next when it continues as new."""

    state: dict[str, Any]
    # When each pending timer fires (absolute, so the next run waits only what is left).
    timers: dict[str, AwareDatetime] = Field(default_factory=dict)
    applied: AppliedWindow = Field(default_factory=AppliedWindow)
    events_seen: int = 0
    issued: list[UUID] = Field(default_factory=list)  # the latest ISSUED_KEPT
    last_event: Event | None = None  # the cause of commands a timer issues
    # Events signalled to the last run and not applied yet: the next run applies them first.
    pending: list[Event] = Field(default_factory=list)
    runs: int = 1  # runs so far, this one included
    started_at: AwareDatetime | None = None  # the first run's start (None: not known)


class SagaStart(_Model):
    saga: str
    tenant_id: UUID
    instance: str
    # Timer lengths by timer name, in seconds, overriding the saga's own (configuration, so
    # tests and staging need not wait fifteen minutes for a deadline).
    timer_seconds: dict[str, float] = Field(default_factory=dict)
    history_limit: int = Field(default=DEFAULT_HISTORY_LIMIT, ge=MIN_HISTORY_LIMIT)
    applied_window: int = Field(default=DEFAULT_APPLIED_WINDOW, ge=1)
    carry: SagaCarry | None = None  # None: the first run


class SagaOutcome(_Model):
    saga: str
    instance: str
    outcome: str
    events_seen: int
    commands_issued: list[UUID]  # the latest ISSUED_KEPT, in the order issued
    runs: int = 1  # 1 + how often it continued as new
    state: dict[str, Any] = Field(default_factory=dict)  # the saga's final state


class IssueRequest(_Model):
    saga: str
    tenant_id: UUID
    instance: str
    key: str
    command_type: str
    payload: dict[str, Any]
    correlation_id: UUID
    causation_id: UUID | None
    traceparent: str | None = None


class InstanceRecord(_Model):
    """What the console sees of an instance (intent.saga_instances), as of `recorded_at`
    (workflow time, so that a late retry of an older record never overwrites a newer one)."""

    saga: str
    tenant_id: UUID
    instance: str
    workflow_id: str
    status: Literal["running", "completed"]
    outcome: str | None = None
    started_at: AwareDatetime
    recorded_at: AwareDatetime
    timers: dict[str, AwareDatetime] = Field(default_factory=dict)  # name -> fire time
    last_event_type: str | None = None
