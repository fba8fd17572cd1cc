"""Commands in PostgreSQL: claiming them into batches, reading a batch, recording outcomes.

Lifecycle: pending → dispatched (claimed into a batch) → processed | rejected | failed.
`rejected` is the domain's answer (or bad input) and is never retried; `failed` is recorded
only after the infrastructure kept failing through every retry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.contracts import Command, StreamId
from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.store.connections import Conn, connection

log = logging.getLogger(__name__)

# Claims are serialised across pumps by this transaction-scoped lock (safe behind a
# transaction pooler): one claim at a time keeps "no aggregate in two batches" simple and
# exact, and a claim is a single short statement.
_CLAIM_LOCK = 0x1A7E_0002

# Fair across tenants: the tenants with pending commands are found by a skip scan (one
# index probe each, in the recursive CTE), each tenant offers its oldest claimable commands
# (at most a batch's worth), and the batch takes them in turns (every tenant's first, then
# every tenant's second, ...), oldest first within a turn. A tenant's picks are a prefix of
# its commands in submission order, so per-aggregate order stays; aggregates with a command
# in flight are skipped (they wait for it). A light claim takes only the tenants that have
# nothing in flight at all (the pump's light lane).
_CLAIM = """
with recursive tenants (tenant_id) as (
  (select tenant_id from intent.commands where status = 'pending'
   order by tenant_id limit 1)
  union all
  select (select c.tenant_id from intent.commands c
           where c.status = 'pending' and c.tenant_id > t.tenant_id
           order by c.tenant_id limit 1)
  from tenants t where t.tenant_id is not null
),
offered as (
  select o.command_id, o.seq,
         row_number() over (partition by t.tenant_id order by o.seq) as turn
  from tenants t
  cross join lateral (
    select c.command_id, c.seq from intent.commands c
    where c.status = 'pending' and c.tenant_id = t.tenant_id
      and not exists (
        select from intent.commands d
        where d.status = 'dispatched'
          and d.aggregate_type = c.aggregate_type and d.aggregate_id = c.aggregate_id)
    order by c.seq
    limit %(limit)s
  ) o
  where t.tenant_id is not null
    and (not %(light)s or not exists (
      select from intent.commands d where d.status = 'dispatched' and d.tenant_id = t.tenant_id))
),
picked as (
  select command_id from offered order by turn, seq limit %(limit)s
),
claimed as (
  select c.command_id from intent.commands c
  join picked using (command_id)
  where c.status = 'pending'
  for update of c skip locked
)
update intent.commands c
set status = 'dispatched', batch_id = %(batch_id)s, attempts = c.attempts + 1,
    updated_at = now()
from claimed where c.command_id = claimed.command_id
returning c.command_id, c.metadata->>'traceparent'
"""

Outcome = Literal["processed", "rejected", "failed"]


@dataclass(frozen=True)
class Batch:
    batch_id: UUID
    command_ids: tuple[UUID, ...]
    # The commands' W3C trace contexts (None where a command came without one): the claim
    # span continues them.
    traceparents: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class StoredCommand:
    """A claimed command as the worker needs it: the envelope and the stream it targets."""

    seq: int
    command: Command
    stream: StreamId


@dataclass
class CommandOutcome:
    command_id: UUID
    status: Outcome
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class OpenBatch:
    batch_id: UUID
    dispatches: int
    age: timedelta


@dataclass
class Outcomes:
    """What one processing of a batch decided, recorded in the same transaction."""

    items: list[CommandOutcome] = field(default_factory=list)

    def add(self, outcome: CommandOutcome) -> None:
        self.items.append(outcome)

    def count(self, status: Outcome) -> int:
        return sum(1 for item in self.items if item.status == status)


class PostgresCommandStore:
    def __init__(self, pool: AsyncConnectionPool[Conn]):
        self._pool = pool

    async def claim(
        self, limit: int, *, claimed_by: str | None = None, light: bool = False
    ) -> Batch | None:
        """Claim up to `limit` pending commands into a new batch: tenants in turns, each
        tenant's oldest first; with `light`, only of tenants with nothing in flight."""
        if limit < 1:
            raise ValueError("a batch holds at least one command")
        batch_id = uuid4()
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(%s)", (_CLAIM_LOCK,))
            cur = await conn.execute(
                _CLAIM, {"limit": limit, "batch_id": batch_id, "light": light}
            )
            rows = await cur.fetchall()
            ids = tuple(row[0] for row in rows)
            if not ids:
                return None
            await conn.execute(
                "insert into intent.batches (batch_id, command_count, claimed_by)"
                " values (%s, %s, %s)",
                (batch_id, len(ids), claimed_by),
            )
        return Batch(batch_id=batch_id, command_ids=ids,
                     traceparents=tuple(row[1] for row in rows))

    async def open_commands(self, batch_id: UUID, conn: Conn) -> list[StoredCommand]:
        """The batch's commands not yet done, in submission order, locked for this
        transaction: a second processing of the same batch waits here, then finds them
        done."""
        async with conn.cursor(row_factory=dict_row) as cur:
            # The envelope as one JSON text: pydantic parses it in one pass.
            await cur.execute(
                "select seq, tenant_id, aggregate_type, aggregate_id,"
                " json_build_object('command_id', command_id, 'command_type', command_type,"
                "   'payload', payload, 'metadata', metadata)::text as command"
                " from intent.commands"
                " where batch_id = %s and status = 'dispatched' order by seq for update",
                (batch_id,),
            )
            rows = await cur.fetchall()
        return [
            StoredCommand(
                seq=row["seq"],
                command=Command.model_validate_json(row["command"]),
                stream=StreamId(
                    tenant_id=row["tenant_id"],
                    aggregate_type=row["aggregate_type"],
                    aggregate_id=row["aggregate_id"],
                ),
            )
            for row in rows
        ]

    async def record(self, outcomes: Sequence[CommandOutcome], conn: Conn) -> None:
        """Every outcome in one statement."""
        if not outcomes:
            return
        await conn.execute(
            "update intent.commands c set status = o.status, result = o.result,"
            " error = o.error, updated_at = now()"
            " from jsonb_to_recordset(%s::jsonb)"
            "   as o(command_id uuid, status text, result jsonb, error jsonb)"
            " where c.command_id = o.command_id",
            (
                json.dumps(
                    [
                        {
                            "command_id": str(o.command_id),
                            "status": o.status,
                            "result": o.result,
                            "error": o.error,
                        }
                        for o in outcomes
                    ],
                    separators=(",", ":"),
                ),
            ),
        )

    async def finish(self, batch_id: UUID, conn: Conn) -> None:
        """Mark the batch done and wake the pumps when this commits: commands held back
        behind its aggregates can be claimed now."""
        await conn.execute(
            "with done as (update intent.batches set status = 'done', finished_at = now(),"
            " updated_at = now() where batch_id = %s and status <> 'done' returning 1)"
            " select pg_notify('intent_commands', 'batch_done') from done",
            (batch_id,),
        )

    async def fail(self, batch_id: UUID, error: dict[str, Any]) -> int:
        """After the last retry: the batch's open commands become `failed`, error recorded."""
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "update intent.commands set status = 'failed', error = %s::jsonb,"
                " updated_at = now() where batch_id = %s and status = 'dispatched'",
                (json.dumps(error), batch_id),
            )
            failed = cur.rowcount
            await conn.execute(
                "update intent.batches set status = 'done', last_error = %s::jsonb,"
                " finished_at = now(), updated_at = now() where batch_id = %s",
                (json.dumps(error), batch_id),
            )
        log_event(log, "batch.failed", f"batch failed after its last attempt: {failed} "
                  "command(s) recorded failed", level=logging.ERROR, batch_id=str(batch_id),
                  commands=failed, error=error.get("message"), error_type=error.get("type"))
        found = telemetry.instruments()
        if found is not None and failed:
            found.commands.add(failed, {"status": "failed"})
        return failed

    async def note_error(
        self, batch_id: UUID, error: dict[str, Any], *, conn: Conn | None = None
    ) -> None:
        """A failed attempt, kept visible on the batch while it is retried."""
        async with connection(self._pool, conn) as c:
            await c.execute(
                "update intent.batches set last_error = %s::jsonb, updated_at = now()"
                " where batch_id = %s",
                (json.dumps(error), batch_id),
            )

    async def stale_batches(
        self, older_than: timedelta, *, conn: Conn | None = None
    ) -> list[OpenBatch]:
        """Batches dispatched but not finished for longer than `older_than` (for the sweep)."""
        async with connection(self._pool, conn) as c:
            cur = await c.execute(
                "select batch_id, dispatches, now() - updated_at from intent.batches"
                " where status = 'dispatched' and updated_at < now() - %s"
                " order by updated_at",
                (older_than,),
            )
            rows = await cur.fetchall()
        return [OpenBatch(batch_id=r[0], dispatches=r[1], age=r[2]) for r in rows]

    async def redispatched(self, batch_id: UUID) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "update intent.batches set dispatches = dispatches + 1, updated_at = now()"
                " where batch_id = %s",
                (batch_id,),
            )
