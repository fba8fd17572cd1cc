"""The Temporal worker for sagas (its own task queue, so sagas and batches scale apart)."""

from __future__ import annotations

import os

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from projections.application import Application
from pump.sagas.activities import SagaActivities
from pump.sagas.contracts import DEFAULT_HISTORY_LIMIT, MIN_HISTORY_LIMIT
from pump.sagas.hosting import host
from pump.sagas.workflow import SagaWorkflow
from pump.store.connections import Conn

DEFAULT_SAGA_QUEUE = "intent-sagas"


def saga_task_queue() -> str:
    return os.environ.get("INTENT_SAGA_TASK_QUEUE", DEFAULT_SAGA_QUEUE)


def saga_timer_overrides(raw: str | None = None) -> dict[str, dict[str, float]]:
    """INTENT_SAGA_TIMERS="orders.fulfilment.payment_deadline=30,other.saga.timer=5":
    timer lengths in seconds by saga and timer name (the last dot separates the timer)."""
    raw = os.environ.get("INTENT_SAGA_TIMERS", "") if raw is None else raw
    found: dict[str, dict[str, float]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, value = item.partition("=")
        saga, dot, timer = name.strip().rpartition(".")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not sep or not dot or not saga or not timer or seconds <= 0:
            raise ValueError(
                f"INTENT_SAGA_TIMERS: {item!r} is not <saga>.<timer>=<seconds> "
                "with seconds above 0"
            )
        found.setdefault(saga, {})[timer] = seconds
    return found


def saga_history_limit(raw: str | None = None) -> int:
    """INTENT_SAGA_HISTORY_LIMIT: history events after which a saga run continues as new
    (default DEFAULT_HISTORY_LIMIT; at least 50, so a run has room for a step)."""
    raw = os.environ.get("INTENT_SAGA_HISTORY_LIMIT", "") if raw is None else raw
    if not raw.strip():
        return DEFAULT_HISTORY_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if limit < MIN_HISTORY_LIMIT:
        raise ValueError(
            f"INTENT_SAGA_HISTORY_LIMIT: {raw!r} is not a whole number of at least "
            f"{MIN_HISTORY_LIMIT}"
        )
    return limit


def build_saga_worker(
    client: Client, pool: AsyncConnectionPool[Conn], application: Application, task_queue: str
) -> Worker:
    """The application's sagas on `task_queue`; its own code passes through the sandbox."""
    host(task_queue, application.registry, application.sagas)
    activities = SagaActivities(pool, application.registry)
    passed = sorted(application.code_packages() | {"domain"})
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[SagaWorkflow],
        activities=[activities.issue_command, activities.record_instance],
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(
                *passed, "pump.sagas.contracts", "pump.sagas.hosting", "pydantic",
                "pydantic_core",
            )
        ),
    )
