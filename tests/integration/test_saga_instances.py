"""Saga instances as a browser sees them (intent.saga_instances, read through
public.saga_instances): the fulfilment saga on the real Temporal dev server records its
instance running with its next timer, and its end; the record is idempotent and never moves
an instance back; and a user's token reads its own tenant's instances only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.contracts import StreamId
from domain.orders import OrderFulfilment
from domain.saga import saga_workflow_id
from pump.sagas.contracts import RECORD_INSTANCE, InstanceRecord
from pump.sagas.instances import upsert_instance
from pump.store.connections import Conn
from tests.support.ingress import Caller, begin_request
from tests.support.pipeline import enqueue, wait_terminal
from tests.support.sagas import place_order, running_stack, saga_result, step, stocked_item

pytestmark = pytest.mark.integration

Row = dict[str, Any]
LIST = "select * from public.saga_instances()"


def workflow_of(order: StreamId) -> str:
    return saga_workflow_id(OrderFulfilment.name, order.tenant_id, str(order.aggregate_id))


async def instance_row(pool: AsyncConnectionPool[Conn], workflow_id: str) -> Row | None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("select * from intent.saga_instances where workflow_id = %s",
                          (workflow_id,))
        return await cur.fetchone()


async def row_when(
    pool: AsyncConnectionPool[Conn], workflow_id: str, ready: Callable[[Row], bool],
    seconds: float = 30,
) -> Row:
    """The instance's row once `ready` holds for it (bounded)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        row = await instance_row(pool, workflow_id)
        if row is not None and ready(row):
            return row
        assert asyncio.get_running_loop().time() < deadline, f"row now: {row}"
        await asyncio.sleep(0.05)


async def first_timer_due(client: Client, workflow_id: str, seconds: float = 30) -> datetime:
    """When the workflow's first timer fires: the start of the workflow task that started
    it (the workflow's time then) plus its timeout. The record comes before the timer (it is
    written before the workflow waits), so the history may not hold it yet: read again."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        task_time: datetime | None = None
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                task_time = event.event_time.ToDatetime(tzinfo=UTC)
            elif event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                assert task_time is not None
                timeout = event.timer_started_event_attributes.start_to_fire_timeout
                return task_time + timeout.ToTimedelta()
        assert asyncio.get_running_loop().time() < deadline, "no timer started"
        await asyncio.sleep(0.05)


async def records_scheduled(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1 for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == RECORD_INSTANCE
    )


async def test_a_waiting_instance_shows_its_next_timer_and_then_its_end(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    async with running_stack(pool, database_url, temporal_env, deadline=60) as client:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order, placed = await place_order(pool, item, quantity=2)
        await wait_terminal(pool, [placed, step(order, "reserve")], seconds=30)
        workflow_id = workflow_of(order)
        running = await row_when(pool, workflow_id, lambda r: r["next_timer_at"] is not None)
        due = await first_timer_due(client, workflow_id)
        paid = await enqueue(pool, order, "orders.confirm_payment")
        outcome = await saga_result(client, order)
        await wait_terminal(pool, [paid], seconds=30)
        records = await records_scheduled(client, workflow_id)
    assert outcome.outcome == "paid"
    assert running["status"] == "running"
    assert (running["tenant_id"], running["saga"], running["instance"]) == (
        order.tenant_id, OrderFulfilment.name, str(order.aggregate_id))
    assert abs(running["next_timer_at"] - due) < timedelta(milliseconds=50)
    assert timedelta(seconds=59) < running["next_timer_at"] - running["started_at"] < (
        timedelta(seconds=65))
    assert list(running["timers"]) == ["payment_deadline"]
    assert datetime.fromisoformat(running["timers"]["payment_deadline"]) == (
        running["next_timer_at"])
    assert running["last_event_type"] == "orders.order_placed"
    done = await instance_row(pool, workflow_id)
    assert done is not None
    assert (done["status"], done["outcome"], done["next_timer_at"], done["timers"]) == (
        "completed", "paid", None, {})
    assert done["started_at"] == running["started_at"]
    assert done["last_event_type"] == "orders.order_paid"
    # Its timers once (the step that started them) and its end: not a record per step.
    assert records == 2


async def test_a_fired_timer_is_replaced_by_the_next_and_the_end_clears_them(
    pool: AsyncConnectionPool[Conn], database_url: str, temporal_env: WorkflowEnvironment
) -> None:
    async with running_stack(pool, database_url, temporal_env, deadline=1.0) as client:
        item, setup = await stocked_item(pool, on_hand=10)
        await wait_terminal(pool, setup, seconds=30)
        order, _ = await place_order(pool, item, quantity=1)
        workflow_id = workflow_of(order)
        # At the deadline the saga asks to cancel and waits for the answer (cancel_retry);
        # the order's order_cancelled ends it.
        outcome = await saga_result(client, order)
    assert outcome.outcome == "expired"
    done = await instance_row(pool, workflow_id)
    assert done is not None
    assert (done["status"], done["outcome"], done["next_timer_at"], done["timers"]) == (
        "completed", "expired", None, {})


def record(tenant: UUID, workflow_id: str, at: datetime, **fields: Any) -> InstanceRecord:
    return InstanceRecord(**{
        "saga": "tests.saga", "tenant_id": tenant, "instance": workflow_id,
        "workflow_id": workflow_id, "status": "running", "started_at": at,
        "recorded_at": at, **fields})


async def test_the_record_is_idempotent_and_never_goes_back(
    runtime_pool: AsyncConnectionPool[Conn],
) -> None:
    """As the saga worker writes it (the runtime's role), with retries arriving late."""
    tenant, workflow_id = uuid4(), f"tests.saga/{uuid4()}"
    t0 = datetime.now(UTC)
    fires = {"deadline": t0 + timedelta(minutes=5), "reminder": t0 + timedelta(minutes=1)}

    async def write(item: InstanceRecord) -> bool:
        async with runtime_pool.connection() as conn:
            return await upsert_instance(conn, item)

    first = record(tenant, workflow_id, t0, timers=fires, last_event_type="a")
    assert await write(first)
    assert await write(first)  # a retry writes the same again
    row = await instance_row(runtime_pool, workflow_id)
    assert row is not None
    assert row["next_timer_at"] == fires["reminder"]
    later = record(tenant, workflow_id, t0 + timedelta(seconds=2),
                   timers={"deadline": fires["deadline"]})
    assert await write(later)
    assert not await write(first)  # older than what is there: a late retry
    row = await instance_row(runtime_pool, workflow_id)
    assert row is not None
    assert (row["next_timer_at"], row["last_event_type"]) == (fires["deadline"], "a")
    end = record(tenant, workflow_id, t0 + timedelta(seconds=3), status="completed",
                 outcome="done", timers=fires)  # a completed instance waits on nothing
    assert await write(end)
    assert not await write(record(tenant, workflow_id, t0 + timedelta(seconds=4),
                                  timers=fires))
    row = await instance_row(runtime_pool, workflow_id)
    assert row is not None
    assert (row["status"], row["outcome"], row["next_timer_at"], row["timers"],
            row["started_at"]) == ("completed", "done", None, {}, t0)


async def listed(pool: AsyncConnectionPool[Conn], caller: Caller, query: str = LIST
                 ) -> list[str]:
    """The workflow ids `caller` reads, as PostgREST runs the request."""
    async with pool.connection() as conn, conn.transaction():
        await begin_request(conn, caller)
        cur = await conn.execute(query)
        return [row[0] for row in await cur.fetchall()]


async def test_a_token_reads_its_own_tenants_instances_only(
    pool: AsyncConnectionPool[Conn],
) -> None:
    mine, theirs = uuid4(), uuid4()
    now = datetime.now(UTC)
    ids = {tenant: [f"tests.saga/{uuid4()}" for _ in range(2)] for tenant in (mine, theirs)}
    async with pool.connection() as conn:
        for tenant, workflow_ids in ids.items():
            for n, workflow_id in enumerate(workflow_ids):
                await upsert_instance(conn, record(
                    tenant, workflow_id, now, status="completed" if n else "running",
                    timers={} if n else {"t": now + timedelta(seconds=30)}))
    assert await listed(pool, Caller(mine)) == ids[mine]  # running first
    assert await listed(pool, Caller(theirs)) == ids[theirs]
    assert await listed(pool, Caller(mine), "select workflow_id from intent.saga_instances"
                        " where tenant_id = '" + str(theirs) + "'") == []
    assert await listed(pool, Caller(uuid4())) == []
    # service_role bypasses RLS; the function's own filter still keeps it to one tenant.
    assert await listed(pool, Caller(mine, role="service_role")) == ids[mine]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await listed(pool, Caller(mine, role="anon"))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await listed(pool, Caller(mine, role="anon"), "select * from intent.saga_instances")
    with pytest.raises(psycopg.Error, match="max_count") as refused:
        await listed(pool, Caller(mine), "select * from public.saga_instances(0)")
    assert refused.value.sqlstate == "PT400"
