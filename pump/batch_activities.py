"""The activities behind the batch workflow: thin wrappers around the batch processor."""

from __future__ import annotations

from temporalio import activity

from pump.batch_contracts import (
    FAIL_BATCH,
    PROCESS_BATCH,
    BatchRequest,
    BatchSummary,
    FailedBatch,
)
from pump.batch_processor import BatchProcessor


class BatchActivities:
    def __init__(self, processor: BatchProcessor):
        self._processor = processor

    @activity.defn(name=PROCESS_BATCH)
    async def process_batch(self, request: BatchRequest) -> BatchSummary:
        try:
            result = await self._processor.process(request.batch_id)
        except Exception as exc:
            # Keep the latest failure visible on the batch while Temporal retries it.
            await self._processor.commands.note_error(
                request.batch_id,
                {
                    "attempt": activity.info().attempt,
                    "type": type(exc).__name__,
                    "message": str(exc),
                },
            )
            raise
        return BatchSummary(
            batch_id=request.batch_id,
            processed=result.processed,
            rejected=result.rejected,
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
