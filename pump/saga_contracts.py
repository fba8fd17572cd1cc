"""What crosses Temporal for sagas: plain pydantic models (sandbox-safe)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SAGA_WORKFLOW = "intent.saga"
SAGA_EVENT_SIGNAL = "event"
ISSUE_COMMAND = "intent.issue_saga_command"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SagaStart(_Model):
    saga: str
    tenant_id: UUID
    instance: str
    # Timer lengths by timer name, in seconds, overriding the saga's own (configuration, so
    # tests and staging need not wait fifteen minutes for a deadline).
    timer_seconds: dict[str, float] = Field(default_factory=dict)


class SagaOutcome(_Model):
    saga: str
    instance: str
    outcome: str
    events_seen: int
    commands_issued: list[UUID]


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
