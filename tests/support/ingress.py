"""The SQL ingress (`public.submit_command`) called as PostgREST calls it: one transaction
per request, `set local role`, the verified JWT's claims in `request.jwt.claims`, then the
function with named arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tests.support.tenants import claims_json

SUBMIT = (
    "select public.submit_command(command_type => %s, payload => %s, command_id => %s,"
    " correlation_id => %s, traceparent => %s)"
)


@dataclass(frozen=True)
class Caller:
    """Who a request is from, as the verified JWT says."""

    tenant_id: UUID
    user_id: UUID = field(default_factory=uuid4)
    role: str = "authenticated"

    def claims(self) -> str:
        return claims_json(self.tenant_id, self.user_id, self.role)


def register(item_id: UUID, sku: str = "SKU-1") -> dict[str, Any]:
    """A register_item payload."""
    return {"item_id": str(item_id), "sku": sku, "name": "A thing"}


async def begin_request(conn: Conn, caller: Caller) -> None:
    """What PostgREST does at the start of a request's transaction."""
    await conn.execute(f"set local role {caller.role}")
    await conn.execute("select set_config('request.jwt.claims', %s, true)", (caller.claims(),))


async def call_submit(
    conn: Conn,
    command_type: str,
    payload: dict[str, Any],
    *,
    command_id: UUID | None = None,
    correlation_id: UUID | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    cur = await conn.execute(
        SUBMIT, (command_type, Jsonb(payload), command_id, correlation_id, traceparent)
    )
    row = await cur.fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


async def submit(
    pool: AsyncConnectionPool[Conn],
    caller: Caller,
    command_type: str,
    payload: dict[str, Any],
    **options: Any,
) -> dict[str, Any]:
    """One request: its own transaction, committed when the call returns."""
    async with pool.connection() as conn, conn.transaction():
        await begin_request(conn, caller)
        return await call_submit(conn, command_type, payload, **options)


async def submit_with_claims(
    pool: AsyncConnectionPool[Conn],
    claims: dict[str, Any],
    command_type: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """One request as `authenticated` with claims as given (for broken tokens)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("set local role authenticated")
        await conn.execute(
            "select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
        )
        return await call_submit(conn, command_type, payload)
