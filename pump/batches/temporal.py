"""Batches on Temporal: the worker that runs the batch workflow and its activities, and the
dispatcher that starts one workflow per batch."""

from __future__ import annotations

from uuid import UUID

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from pump.batches.activities import BatchActivities
from pump.batches.contracts import BatchRequest, workflow_id
from pump.batches.processor import BatchProcessor
from pump.batches.workflow import BatchWorkflow


def build_worker(
    client: Client,
    processor: BatchProcessor,
    task_queue: str,
    *,
    max_activities: int = 8,
    eager: bool = True,
) -> Worker:
    """`eager=False` turns eager activity execution off (for the benchmark's comparison)."""
    activities = BatchActivities(processor)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BatchWorkflow],
        activities=[activities.process_batch, activities.fail_batch],
        max_concurrent_activities=max_activities,
        max_concurrent_workflow_tasks=max(2 * max_activities, 16),
        max_cached_workflows=max(8 * max_activities, 256),
        disable_eager_activity_execution=not eager,
        # The pure domain and our contracts need no sandboxing: passing them through saves
        # re-importing them for every workflow run (about half the worker's CPU per run).
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                "domain", "pump.batches.contracts", "pydantic", "pydantic_core"
            )
        ),
    )


class TemporalDispatcher:
    """One workflow per batch, its id derived from the batch id: a second start of a running
    batch joins it; a batch whose workflow ended without finishing it runs again."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        max_attempts: int = 5,
        attempt_timeout_seconds: float = 30.0,
        eager: bool = True,
    ):
        """`eager`: ask for eager workflow start, so that a worker on the same client takes
        the first workflow task from the start's reply (ignored when there is none)."""
        self._client = client
        self._task_queue = task_queue
        self._max_attempts = max_attempts
        self._attempt_timeout = attempt_timeout_seconds
        self._eager = eager

    async def dispatch(self, batch_id: UUID) -> None:
        handle = await self._client.start_workflow(
            BatchWorkflow.run,
            BatchRequest(
                batch_id=batch_id,
                max_attempts=self._max_attempts,
                attempt_timeout_seconds=self._attempt_timeout,
            ),
            id=workflow_id(batch_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            request_eager_start=self._eager,
        )
        await handle.result()
