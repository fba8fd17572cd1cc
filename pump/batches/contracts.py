"""What crosses Temporal for a batch: plain pydantic models, safe inside the workflow
sandbox and carried by the pydantic data converter."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

PROCESS_BATCH = "intent.process_batch"
FAIL_BATCH = "intent.fail_batch"
BATCH_WORKFLOW = "intent.batch"
# The error type of an attempt lost because the database could not be reached: the
# workflow waits and tries again without counting it against the batch's attempts.
DATABASE_UNAVAILABLE = "intent.DatabaseUnavailable"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BatchRequest(_Model):
    batch_id: UUID
    max_attempts: int = Field(default=5, ge=1)
    # How long one attempt may take before Temporal starts another: also how long a batch
    # waits after its worker died (a second attempt that overlaps a slow first one waits on
    # the batch's row locks, then finds the work done).
    attempt_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long attempts lost to an unreachable database are retried before the workflow
    # gives up and leaves the batch to the pump's sweep (its commands stay open).
    unavailable_seconds: float = Field(default=1800.0, gt=0)


class BatchSummary(_Model):
    batch_id: UUID
    processed: int = 0
    rejected: int = 0
    failed: int = 0
    events: int = 0
    skipped: bool = False  # an earlier run had already committed it


class FailedBatch(_Model):
    batch_id: UUID
    error_type: str
    message: str
    attempts: int


def workflow_id(batch_id: UUID) -> str:
    """One workflow per batch, named by it: starting it twice is harmless."""
    return f"intent-batch-{batch_id}"
