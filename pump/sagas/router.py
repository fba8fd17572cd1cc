"""The saga router: follows the global feed from its checkpoint and delivers each event to
the saga instances that listen to it (signal-with-start for the events that start a saga).

Delivery is at least once: the checkpoint is written after the signals, and a saga applies
each event id once. An instance id starts at most one saga run, so a start event delivered
again after its saga finished does not start it over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import Event
from domain.feed import FeedPosition
from domain.registry import Registry
from domain.saga import Saga, SagaRegistry, saga_workflow_id
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.projections.checkpoints import load_checkpoint, save_checkpoint
from pump.sagas.contracts import SAGA_EVENT_SIGNAL, SAGA_WORKFLOW, SagaStart
from pump.sagas.worker import saga_history_limit
from pump.sagas.workflow import SagaWorkflow
from pump.store.connections import Conn
from pump.store.feed import GlobalFeed

log = logging.getLogger(__name__)

CONSUMER = "saga_router"


class SagaRouter:
    def __init__(
        self,
        pool: AsyncConnectionPool[Conn],
        client: Client,
        *,
        registry: Registry,
        sagas: SagaRegistry,
        task_queue: str,
        timer_seconds: Mapping[str, Mapping[str, float]] | None = None,
        history_limit: int | None = None,
        poll_interval: float = 0.2,
        page_size: int = 200,
    ):
        self._pool = pool
        self._client = client
        self._registry = registry
        self._sagas = sagas
        self._task_queue = task_queue
        self._timer_seconds = timer_seconds or {}
        # None: INTENT_SAGA_HISTORY_LIMIT, else the default (read here, so a malformed value
        # stops the router at start like a malformed INTENT_SAGA_TIMERS).
        self._history_limit = history_limit or saga_history_limit()
        self._poll_interval = poll_interval
        self._page_size = page_size
        self._feed = GlobalFeed(pool)
        self.delivered = 0

    async def run(self, stop: asyncio.Event) -> None:
        samplers: list[asyncio.Task[None]] = []
        if telemetry.metering():
            from pump.observability.gauges import every, sample_lag, sample_sagas

            samplers = [
                asyncio.create_task(every(stop, lambda: sample_lag(self._pool, [CONSUMER]))),
                asyncio.create_task(
                    every(stop, lambda: sample_sagas(self._client, SAGA_WORKFLOW))
                ),
            ]
        try:
            await self._follow(stop)
        finally:
            for task in samplers:
                task.cancel()
            await asyncio.gather(*samplers, return_exceptions=True)

    async def _follow(self, stop: asyncio.Event) -> None:
        position = await self._checkpoint()
        while not stop.is_set():
            page = await self._feed.read(position, limit=self._page_size)
            for event in page.events:
                await self._route(event)
            if page.events:
                position = page.next
                await self._save(position)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._poll_interval)

    async def _route(self, event: Event) -> None:
        listeners = self._sagas.interested_in(event)
        if not listeners:
            return
        # A child of the span that appended the event; Temporal's interceptor carries it
        # into the saga workflow's start or signal.
        with telemetry.span(
            f"intent.saga.route {event.event_type}",
            {"intent.event_id": str(event.event_id), "intent.event_type": event.event_type,
             "intent.tenant_id": str(event.stream.tenant_id)},
            parent=event.metadata.traceparent,
        ):
            await self._deliver(event, listeners)

    async def _deliver(self, event: Event, listeners: Sequence[type[Saga[Any]]]) -> None:
        payload = self._registry.load_event(event)
        for saga in listeners:
            started = time.perf_counter()
            instance = saga.instance_of(payload)
            if instance is None:
                continue
            workflow_id = saga_workflow_id(saga.name, event.stream.tenant_id, instance)
            if event.event_type in saga.starts_on:
                start = SagaStart(
                    saga=saga.name,
                    tenant_id=event.stream.tenant_id,
                    instance=instance,
                    timer_seconds=dict(self._timer_seconds.get(saga.name, {})),
                    history_limit=self._history_limit,
                )
                try:
                    await self._client.start_workflow(
                        SagaWorkflow.run,
                        start,
                        id=workflow_id,
                        task_queue=self._task_queue,
                        start_signal=SAGA_EVENT_SIGNAL,
                        start_signal_args=[event],
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    )
                except WorkflowAlreadyStartedError:
                    log.info("saga %s already ran; start event %s not delivered again",
                             workflow_id, event.event_id)
            else:
                try:
                    await self._client.get_workflow_handle(workflow_id).signal(
                        SAGA_EVENT_SIGNAL, event
                    )
                except RPCError as exc:
                    if exc.status != RPCStatusCode.NOT_FOUND:
                        raise
                    log.info("no running saga %s for event %s", workflow_id, event.event_id)
            self.delivered += 1
            log_event(log, "saga.delivered", level=logging.DEBUG, saga=saga.name,
                      instance=instance, workflow_id=workflow_id,
                      tenant=str(event.stream.tenant_id),
                      correlation_id=str(event.metadata.correlation_id),
                      trace_id=_trace_id(event.metadata.traceparent),
                      event_id=str(event.event_id), event_type=event.event_type,
                      duration_ms=round((time.perf_counter() - started) * 1000, 3))

    async def _checkpoint(self) -> FeedPosition:
        async with self._pool.connection() as conn:
            return (await load_checkpoint(conn, CONSUMER)).position

    async def _save(self, position: FeedPosition) -> None:
        async with self._pool.connection() as conn:
            await save_checkpoint(conn, CONSUMER, position)


def _trace_id(traceparent: str | None) -> str | None:
    context = telemetry.span_context(traceparent)
    return f"{context.trace_id:032x}" if context else None
