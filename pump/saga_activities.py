"""The saga runtime's only write: inserting a command the saga issued, with an id derived
from the step, so a retried or replayed step finds it there already."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.contracts import Command, Metadata
from domain.errors import BadInput
from domain.registry import Registry
from domain.saga import saga_command_id
from pump.database import Conn
from pump.saga_contracts import ISSUE_COMMAND, IssueRequest

SAGA_ROLE = "service_role"


class SagaActivities:
    def __init__(self, pool: AsyncConnectionPool[Conn], registry: Registry):
        self._pool = pool
        self._registry = registry

    @activity.defn(name=ISSUE_COMMAND)
    async def issue_command(self, request: IssueRequest) -> str:
        command_id = saga_command_id(
            request.saga, request.tenant_id, request.instance, request.key
        )
        metadata = Metadata(
            tenant_id=request.tenant_id,
            role=SAGA_ROLE,
            correlation_id=request.correlation_id,
            causation_id=request.causation_id,
            traceparent=request.traceparent,
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
