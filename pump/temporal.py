"""Temporal wiring: settings from the environment, the client, the worker, the dispatcher."""

from __future__ import annotations

import os
from dataclasses import dataclass
from uuid import UUID

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from pump import telemetry
from pump.batch_activities import BatchActivities
from pump.batch_contracts import BatchRequest, workflow_id
from pump.batch_processor import BatchProcessor
from pump.batch_workflow import BatchWorkflow

# The dev-server tuning measured on the architecture page: without it every workflow waits
# on ~100 ms poll intervals; with it, ~35 ms.
DEV_SERVER_TUNING = [
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.timerProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.visibilityProcessorMaxPollRPS=10000",
    # Eager starts and eager activities: a worker on the starting client (or the worker that
    # completed the workflow task) gets the next task in the reply, skipping a poll each.
    "--dynamic-config-value", "system.enableEagerWorkflowStart=true",
    "--dynamic-config-value", "system.enableActivityEagerExecution=true",
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
]


@dataclass(frozen=True)
class TemporalSettings:
    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "intent-batches"

    @classmethod
    def from_env(cls) -> TemporalSettings:
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", cls.address),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=os.environ.get("INTENT_TASK_QUEUE", cls.task_queue),
        )


async def connect(settings: TemporalSettings) -> Client:
    """With tracing on, the client (and the workers built on it) carries Temporal's
    TracingInterceptor, so workflows and activities continue the caller's trace."""
    return await Client.connect(
        settings.address, namespace=settings.namespace, data_converter=pydantic_data_converter,
        interceptors=telemetry.temporal_interceptors(),
    )


def traced(client: Client) -> Client:
    """The same connection with the tracing interceptor (when tracing is on), for callers
    that were handed a client (tests, the benchmark)."""
    interceptors = telemetry.temporal_interceptors()
    if not interceptors:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], *interceptors]
    return Client(**config)


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
                "domain", "pump.batch_contracts", "pydantic", "pydantic_core"
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
