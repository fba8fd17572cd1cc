"""The activities behind the batch workflow: thin wrappers around the batch processor."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from pump.batches.contracts import (
    DATABASE_UNAVAILABLE,
    FAIL_BATCH,
    PROCESS_BATCH,
    BatchRequest,
    BatchSummary,
    FailedBatch,
)
from pump.batches.isolation import is_unavailable
from pump.batches.processor import BatchProcessor, PoisonedBatchError


class BatchActivities:
    def __init__(self, processor: BatchProcessor):
        self._processor = processor

    @activity.defn(name=PROCESS_BATCH)
    async def process_batch(self, request: BatchRequest) -> BatchSummary:
        attempt = activity.info().attempt
        try:
            result = await self._processor.process(
                request.batch_id, attempt=attempt, last_attempt=attempt >= request.max_attempts
            )
        except Exception as exc:
            if is_unavailable(exc):  # nothing can be noted; the workflow waits it out
                raise ApplicationError(
                    f"database unavailable: {type(exc).__name__}: {exc}",
                    type=DATABASE_UNAVAILABLE,
                ) from exc
            if not isinstance(exc, PoisonedBatchError):  # that one noted its own
                # Keep the latest failure visible on the batch while Temporal retries it.
                await self._processor.commands.note_error(
                    request.batch_id,
                    {"attempt": attempt, "type": type(exc).__name__, "message": str(exc)},
                )
            raise
        return BatchSummary(
            batch_id=request.batch_id,
            processed=result.processed,
            rejected=result.rejected,
            failed=result.failed,
            events=result.events,
            skipped=result.skipped,
        )

    @activity.defn(name=FAIL_BATCH)
    async def fail_batch(self, failure: FailedBatch) -> BatchSummary:
        failed = await self._processor.commands.fail(
            failure.batch_id,
            {"attempt": failure.attempts, "type": failure.error_type, "message": failure.message},
        )
        return BatchSummary(batch_id=failure.batch_id, failed=failed)
