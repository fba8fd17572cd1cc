"""A long-lived saga on the real Temporal dev server: thousands of events, a history bounded
by a small limit (so it continues as new many times), no event lost in a hand-over or
applied twice (redeliveries, also of events long forgotten by the window), and a timer that
keeps its fire time across runs instead of starting over."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, ConfigDict
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.contracts import Event, Metadata, StreamId
from domain.inventory.events import ItemRegistered, StockReceived, StockReserved
from domain.saga import (
    Action,
    Complete,
    IssueCommand,
    Saga,
    StartTimer,
    saga_command_id,
    saga_workflow_id,
)
from projections.shop import application, registry, sagas
from pump.sagas.contracts import SAGA_EVENT_SIGNAL, SagaStart
from pump.sagas.worker import build_saga_worker
from pump.sagas.workflow import SagaWorkflow
from pump.store.connections import Conn

pytestmark = pytest.mark.integration

EVENTS = 2_000
HISTORY_LIMIT = 200
WINDOW = 500
ISSUE_EVERY = 100
CLOSE_AFTER = 4.0  # seconds: the timer fires while the events still stream in, or soon after


class TallyState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: UUID | None = None
    received: int = 0
    total: int = 0
    closed_at: int | None = None  # how many had been received when the timer fired


class Tally(Saga[TallyState]):
    """Counts an item's deliveries; every ISSUE_EVERY-th issues a command (so signals arrive
    while a step awaits its activity); its timer notes when it fired; a reservation ends it."""

    name = "tests.tally"
    state_model = TallyState
    starts_on = frozenset({"inventory.item_registered"})
    feeds_on = frozenset({"inventory.stock_received", "inventory.stock_reserved"})

    @classmethod
    def instance_of(cls, event: BaseModel) -> str | None:
        item_id = getattr(event, "item_id", None)
        return str(item_id) if item_id is not None else None

    @classmethod
    def react(cls, state: TallyState, event: BaseModel) -> tuple[TallyState, Sequence[Action]]:
        match event:
            case ItemRegistered(item_id=item_id) if state.item_id is None:
                return (TallyState(item_id=item_id),
                        [StartTimer("close", timedelta(hours=1))])
            case StockReceived(item_id=item_id, quantity=quantity):
                received = state.received + 1
                counted = state.model_copy(update={"received": received,
                                                   "total": state.total + quantity})
                if received % ISSUE_EVERY:
                    return counted, []
                return counted, [IssueCommand(
                    "inventory.receive_stock", {"item_id": str(item_id), "quantity": 1},
                    key=f"count-{received}",
                )]
            case StockReserved():
                return state, [Complete("tallied")]
            case _:
                return state, []

    @classmethod
    def on_timer(cls, state: TallyState, timer: str) -> tuple[TallyState, Sequence[Action]]:
        return state.model_copy(update={"closed_at": state.received}), []


@pytest.fixture
def tally() -> Iterator[type[Tally]]:
    """The test saga, known to the saga workflow (through the app's registry) meanwhile."""
    sagas.add(Tally)
    try:
        yield Tally
    finally:
        sagas.remove(Tally.name)


def envelope(stream: StreamId, event_type: str, payload: BaseModel, n: int) -> Event:
    """The `n`-th event of the feed (as the router would deliver it, with its position)."""
    return Event(
        event_id=uuid4(), event_type=event_type,
        schema_version=registry.event_type(event_type).version, stream=stream, version=n + 1,
        payload=payload.model_dump(mode="json"),
        metadata=Metadata(tenant_id=stream.tenant_id, correlation_id=uuid4()),
        position=n, transaction_id=10_000 + n // 7,
    )


def feed(stream: StreamId) -> tuple[list[Event], list[Event]]:
    """The item's events in feed order, and the order they are sent in: each once, plus
    redeliveries of recent events (still in the window) and of old ones (long out of it)."""
    item = stream.aggregate_id
    events = [envelope(stream, "inventory.item_registered",
                       ItemRegistered(item_id=item, sku="T", name="Tally"), 0)]
    events += [envelope(stream, "inventory.stock_received",
                        StockReceived(item_id=item, quantity=n % 7 + 1), n)
               for n in range(1, EVENTS + 1)]
    sent: list[Event] = []
    for n, event in enumerate(events):
        sent.append(event)
        if n % 50 == 0 and n >= 20:
            sent.append(events[n - 20])  # in the window: dropped by id
        if n % 100 == 0 and n > WINDOW + 100:
            sent.append(events[n - WINDOW - 100])  # forgotten: dropped by the floor
    return events, sent


async def send(handle: WorkflowHandle[Any, Any], events: Sequence[Event]) -> None:
    """One signal after the other, as the router delivers (in feed order, each awaited):
    as fast as they go, so that signals keep arriving through every hand-over."""
    for event in events:
        await handle.signal(SAGA_EVENT_SIGNAL, event)


async def runs_of(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """Every run's history, first run first, following the continue-as-new chain back."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, list(history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return runs
        run_id = started.continued_execution_run_id


def at(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime()


async def test_a_long_lived_saga_continues_as_new_and_loses_nothing(
    pool: AsyncConnectionPool[Conn], temporal_env: WorkflowEnvironment, tally: type[Tally]
) -> None:
    queue = f"sagas-{uuid4().hex[:8]}"
    stream = StreamId(tenant_id=uuid4(), aggregate_type="inventory.item", aggregate_id=uuid4())
    instance = str(stream.aggregate_id)
    events, sent = feed(stream)
    client = await Client.connect(
        temporal_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
    )
    async with build_saga_worker(client, pool, application, queue):
        handle = await client.start_workflow(
            SagaWorkflow.run,
            SagaStart(saga=tally.name, tenant_id=stream.tenant_id, instance=instance,
                      timer_seconds={"close": CLOSE_AFTER}, history_limit=HISTORY_LIMIT,
                      applied_window=WINDOW),
            id=saga_workflow_id(tally.name, stream.tenant_id, instance),
            task_queue=queue, start_signal=SAGA_EVENT_SIGNAL, start_signal_args=[sent[0]],
        )
        started = asyncio.get_running_loop().time()
        await send(handle, sent[1:])
        # The first events once more, long after the window forgot them.
        await send(handle, events[: WINDOW // 2])
        # The end only after the timer fired (it fires whether events still come or not).
        closed = started + CLOSE_AFTER + 1
        await asyncio.sleep(max(0.0, closed - asyncio.get_running_loop().time()))
        end = envelope(stream, "inventory.stock_reserved",
                       StockReserved(item_id=stream.aggregate_id, order_id=uuid4(), quantity=1),
                       EVENTS + 1)
        await handle.signal(SAGA_EVENT_SIGNAL, end)
        outcome = await asyncio.wait_for(handle.result(), timeout=60)
        runs = await runs_of(client, handle.id)
    issued = await take_commands(pool, outcome.commands_issued)

    # Every event applied exactly once, across all runs.
    assert outcome.outcome == "tallied"
    state = TallyState.model_validate(outcome.state)
    assert state.received == EVENTS
    assert state.total == sum(n % 7 + 1 for n in range(1, EVENTS + 1))
    assert outcome.events_seen == EVENTS + 2  # the registration and the end, too
    assert len(sent) > len(events)  # there were redeliveries to drop
    # Its steps' commands, each once, with the ids of their steps, across runs.
    steps = [saga_command_id(tally.name, stream.tenant_id, instance, f"count-{n}")
             for n in range(ISSUE_EVERY, EVENTS + 1, ISSUE_EVERY)]
    assert outcome.commands_issued == steps
    assert issued == set(steps)

    # The history stayed bounded: many runs, and none began a step once its history was
    # past the limit (signals keep coming, so a run may hold a few more events than that).
    assert outcome.runs == len(runs) > EVENTS // (4 * HISTORY_LIMIT)
    for history in runs[:-1]:
        assert history[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert steps_past(history, HISTORY_LIMIT) == []

    # The timer kept its fire time: every wait in every run aimed at the same moment (a
    # restarted timer would wait its whole length again in each run, and never fire while
    # events flow). A workflow task's time is when it started.
    assert state.closed_at is not None
    waits = timer_waits(runs)
    due = waits[0][0] + timedelta(seconds=CLOSE_AFTER)  # started by the first task
    assert len({run for _, _, run in waits}) > 1  # it was waited for across a hand-over
    for task_time, timeout, run in waits:
        assert abs((task_time + timeout - due).total_seconds()) < 0.5, (run, timeout)
    # And it fired then: between the last event it counted and the next (a timer may fire
    # on a signal's wake-up, so the signals date it, not a TimerFired event).
    arrived = signal_times(runs)
    assert arrived[state.closed_at] < due + timedelta(seconds=1.5)
    assert arrived[state.closed_at + 1] > due - timedelta(seconds=1.5)


def timer_waits(runs: list[list[HistoryEvent]]) -> list[tuple[datetime, timedelta, int]]:
    """(time of the workflow task that started it, its timeout, run) of every timer."""
    waits: list[tuple[datetime, timedelta, int]] = []
    for run, history in enumerate(runs):
        task_time = at(history[0])
        for e in history:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                task_time = at(e)
            elif e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                timeout = e.timer_started_event_attributes.start_to_fire_timeout
                waits.append((task_time, timeout.ToTimedelta(), run))
    return waits


async def take_commands(pool: AsyncConnectionPool[Conn], ids: list[UUID]) -> set[UUID]:
    """The saga's commands in the store, removed (no pump runs here; later tests' pumps
    need not reject them)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "delete from intent.commands where command_id = any(%s) and status = 'pending'"
            " returning command_id", (ids,),
        )
        return {row[0] for row in await cur.fetchall()}


def steps_past(history: list[HistoryEvent], limit: int) -> list[HistoryEvent]:
    """Timers started and activities scheduled by workflow tasks that began with the
    history at `limit` events or more (a workflow task sees the history up to its start)."""
    begun_at = 0
    late: list[HistoryEvent] = []
    for index, e in enumerate(history, start=1):
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            begun_at = index
        elif begun_at >= limit and e.event_type in (
            EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ):
            late.append(e)
    return late


def signal_times(runs: list[list[HistoryEvent]]) -> dict[int, datetime]:
    """When each event (by feed position) was first signalled, over all runs."""
    first: dict[int, datetime] = {}
    for history in runs:
        for e in history:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                data = e.workflow_execution_signaled_event_attributes.input.payloads[0].data
                first.setdefault(Event.model_validate_json(data).position or 0, at(e))
    return first
