"""The saga runtime's writes: inserting a command the saga issued, with an id derived from
the step, so a retried or replayed step finds it there already; and recording what the
console may see of an instance (intent.saga_instances), idempotently."""

from __future__ import annotations

import logging
import time

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.contracts import Command, Metadata
from domain.errors import BadInput
from domain.registry import Registry
from domain.saga import saga_command_id
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.sagas.contracts import ISSUE_COMMAND, RECORD_INSTANCE, InstanceRecord, IssueRequest
from pump.sagas.instances import upsert_instance
from pump.store.connections import Conn

log = logging.getLogger(__name__)

SAGA_ROLE = "service_role"


class SagaActivities:
    def __init__(self, pool: AsyncConnectionPool[Conn], registry: Registry):
        self._pool = pool
        self._registry = registry

    @activity.defn(name=ISSUE_COMMAND)
    async def issue_command(self, request: IssueRequest) -> str:
        """A saga step: with tracing on, a span that is a child of the causing event's trace
        context (linked to the activity's own span), and the command carries it on."""
        started = time.perf_counter()
        with telemetry.span(
            f"intent.saga.step {request.saga}",
            {"intent.saga": request.saga, "intent.saga.instance": request.instance,
             "intent.saga.step": request.key, "intent.command_type": request.command_type,
             "intent.tenant_id": str(request.tenant_id)},
            parent=request.traceparent,
        ):
            command_id = await self._issue(request)
        log_event(log, "saga.step", level=logging.INFO, saga=request.saga,
                  instance=request.instance, step=request.key, tenant=str(request.tenant_id),
                  correlation_id=str(request.correlation_id),
                  trace_id=_trace_id(request.traceparent),
                  command_id=command_id, command_type=request.command_type,
                  event_id=str(request.causation_id) if request.causation_id else None,
                  duration_ms=round((time.perf_counter() - started) * 1000, 3))
        return command_id

    @activity.defn(name=RECORD_INSTANCE)
    async def record_instance(self, record: InstanceRecord) -> bool:
        """Upsert the instance's row; False when a newer record (or its end) is there."""
        async with self._pool.connection() as conn:
            written = await upsert_instance(conn, record)
        log_event(log, "saga.recorded", level=logging.DEBUG, saga=record.saga,
                  instance=record.instance, tenant=str(record.tenant_id),
                  status=record.status, timers=len(record.timers), written=written)
        return written

    async def _issue(self, request: IssueRequest) -> str:
        command_id = saga_command_id(
            request.saga, request.tenant_id, request.instance, request.key
        )
        metadata = Metadata(
            tenant_id=request.tenant_id,
            role=SAGA_ROLE,
            correlation_id=request.correlation_id,
            causation_id=request.causation_id,
            traceparent=telemetry.current_traceparent() or request.traceparent,
        )
        command = Command(
            command_id=command_id,
            command_type=request.command_type,
            payload=request.payload,
            metadata=metadata,
        )
        try:  # a saga that issues a command the registry refuses is a bug: do not retry it
            parsed = self._registry.parse_command(command)
            self._registry.check_role(request.command_type, SAGA_ROLE)
        except BadInput as exc:
            raise ApplicationError(
                f"saga {request.saga} issued an invalid command: {exc.message}",
                type="InvalidSagaCommand",
                non_retryable=True,
            ) from exc
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "insert into intent.commands (command_id, tenant_id, user_id, role,"
                " command_type, aggregate_type, aggregate_id, payload, metadata)"
                " values (%s, %s, null, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"
                " on conflict (command_id) do nothing",
                (
                    command_id, request.tenant_id, SAGA_ROLE, request.command_type,
                    parsed.stream.aggregate_type, parsed.stream.aggregate_id,
                    parsed.payload.model_dump_json(), metadata.model_dump_json(),
                ),
            )
            await conn.execute("select pg_notify('intent_commands', 'saga')")
        return str(command_id)


def _trace_id(traceparent: str | None) -> str | None:
    context = telemetry.span_context(traceparent)
    return f"{context.trace_id:032x}" if context else None
