"""The batch workflow: one activity does the whole batch in one database transaction;
Temporal supplies the retries, and after the last one the batch's commands are recorded as
failed. Deterministic: no I/O here, only activity calls.

The batch runs as a local activity: the worker that took the workflow task runs it and
records the result with the workflow's completion, which halves the Temporal server's CPU
per batch (measured: ~40 ms with a regular activity, ~21 ms local; README, Benchmarks).
A worker that dies mid-batch leaves the workflow task to time out; the next worker runs the
activity again, and the processor skips what the first one committed.

It runs outside the workflow sandbox: it has no code of its own beyond two activity calls,
and a sandboxed run re-creates its module namespace every time (measured: ~13 ms of worker
CPU per batch). The saga workflows, which hold real logic, stay sandboxed."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pump.batches.contracts import (
        BATCH_WORKFLOW,
        DATABASE_UNAVAILABLE,
        FAIL_BATCH,
        PROCESS_BATCH,
        BatchRequest,
        BatchSummary,
        FailedBatch,
    )


@workflow.defn(name=BATCH_WORKFLOW, sandboxed=False)
class BatchWorkflow:
    @workflow.run
    async def run(self, request: BatchRequest) -> BatchSummary:
        waited, pause = 0.0, 1.0
        while True:
            try:
                summary: BatchSummary = await workflow.execute_local_activity(
                    PROCESS_BATCH,
                    request,
                    result_type=BatchSummary,
                    start_to_close_timeout=timedelta(seconds=request.attempt_timeout_seconds),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(milliseconds=200),
                        backoff_coefficient=2.0,
                        maximum_interval=timedelta(seconds=5),
                        maximum_attempts=request.max_attempts,
                    ),
                )
                return summary
            except ActivityError as exc:
                cause = exc.cause or exc
                if _unavailable(cause) and waited < request.unavailable_seconds:
                    # The database is away: its outage is not the batch's fault, so it
                    # does not use up the attempts. Wait durably and start over.
                    await workflow.sleep(pause)
                    waited, pause = waited + pause, min(pause * 2, 30.0)
                    continue
                if _unavailable(cause):
                    raise  # the batch stays open for the pump's sweep
                return await _fail(request, cause)


def _unavailable(cause: BaseException) -> bool:
    return isinstance(cause, ApplicationError) and cause.type == DATABASE_UNAVAILABLE


async def _fail(request: BatchRequest, cause: BaseException) -> BatchSummary:
    """After the last attempt: the batch's open commands are recorded failed. Recording the
    failure must not be lost: retried until the database answers."""
    failure = FailedBatch(
        batch_id=request.batch_id,
        error_type=(cause.type or type(cause).__name__) if isinstance(cause, ApplicationError)
        else type(cause).__name__,
        message=str(cause),
        attempts=request.max_attempts,
    )
    recorded: BatchSummary = await workflow.execute_activity(
        FAIL_BATCH,
        failure,
        result_type=BatchSummary,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )
    return recorded
