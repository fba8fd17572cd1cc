"""The saga router: follows the global feed from its checkpoint and delivers each event to
the saga instances that listen to it (signal-with-start for the events that start a saga).

Delivery is at least once: the checkpoint is written after the signals, and a saga applies
each event id once. An instance id starts at most one saga run, so a start event delivered
again after its saga finished does not start it over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.contracts import Event
from domain.registry import Registry
from domain.saga import SagaRegistry, saga_workflow_id
from pump.database import Conn
from pump.feed import FeedPosition, GlobalFeed
from pump.saga_contracts import SAGA_EVENT_SIGNAL, SagaStart
from pump.saga_workflow import SagaWorkflow

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
        poll_interval: float = 0.2,
        page_size: int = 200,
    ):
        self._pool = pool
        self._client = client
        self._registry = registry
        self._sagas = sagas
        self._task_queue = task_queue
        self._timer_seconds = timer_seconds or {}
        self._poll_interval = poll_interval
        self._page_size = page_size
        self._feed = GlobalFeed(pool)
        self.delivered = 0

    async def run(self, stop: asyncio.Event) -> None:
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
        payload = self._registry.load_event(event)
        for saga in listeners:
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

    async def _checkpoint(self) -> FeedPosition:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "select transaction_id::text::bigint, position from intent.checkpoints"
                " where consumer = %s",
                (CONSUMER,),
            )
            row = await cur.fetchone()
        return FeedPosition(row[0], row[1]) if row else FeedPosition()

    async def _save(self, position: FeedPosition) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "insert into intent.checkpoints (consumer, transaction_id, position)"
                " values (%s, %s::text::xid8, %s) on conflict (consumer) do update"
                " set transaction_id = excluded.transaction_id, position = excluded.position,"
                " updated_at = now()",
                (CONSUMER, str(position.transaction_id), position.position),
            )
