"""One workflow per saga instance hosts its pure definition: events arrive as signals (each
applied once, by event id), timers are durable workflow timers, and commands are issued by
an activity that inserts them with ids derived from the step, so that a replayed or retried
step never issues a command twice.

A long-lived instance keeps its history bounded: past `SagaStart.history_limit` events (or
when Temporal suggests it) it continues as new between two steps, carrying its state, its
timers' fire times (not restarted), the latest applied event ids and the events received
but not applied yet, which the next run applies first. It hands them over rather than
applying them first, since applying may issue commands, and awaiting those lets yet more
signals in: under a steady stream the run could never close.

What a browser may see of the instance is recorded in intent.saga_instances by an activity,
only when that changes: its timers (before it waits on them) and its end."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.contracts import Event
    from domain.saga import (
        Action,
        CancelTimer,
        Complete,
        IssueCommand,
        StartTimer,
        saga_command_id,
    )
    from pump.sagas.contracts import (
        ISSUE_COMMAND,
        ISSUED_KEPT,
        RECORD_INSTANCE,
        RECORD_INSTANCE_PATCH,
        SAGA_EVENT_SIGNAL,
        SAGA_WORKFLOW,
        AppliedWindow,
        FeedSpot,
        InstanceRecord,
        IssueRequest,
        SagaCarry,
        SagaOutcome,
        SagaStart,
    )
    from pump.sagas.hosting import hosted


class AppliedEvents:
    """Which events a saga applied, bounded: the latest `window` ids, and a floor below which
    every event counts as applied. The router delivers in feed order, so an event at or
    before the spot of one that dropped out of the window was delivered (and applied) before
    it; only a redelivery comes that late. Events with no feed spot are judged by id alone."""

    def __init__(self, window: int, carried: AppliedWindow | None = None) -> None:
        self._window = window
        self._latest: OrderedDict[UUID, FeedSpot | None] = OrderedDict(
            carried.latest if carried else ()
        )
        self._floor: FeedSpot | None = carried.floor if carried else None
        self._trim()

    def first_time(self, event: Event) -> bool:
        """Record `event` as applied; False if it was (a redelivery: skip it)."""
        if event.event_id in self._latest:
            return False
        spot = _spot(event)
        if spot is not None and self._floor is not None and spot <= self._floor:
            return False
        self._latest[event.event_id] = spot
        self._trim()
        return True

    def carry(self) -> AppliedWindow:
        return AppliedWindow(latest=list(self._latest.items()), floor=self._floor)

    def _trim(self) -> None:
        while len(self._latest) > self._window:
            _, dropped = self._latest.popitem(last=False)
            if dropped is not None and (self._floor is None or dropped > self._floor):
                self._floor = dropped


class InstanceRecorder:
    """Keeps the instance's row in intent.saga_instances in step, at an activity per change
    of what it shows (its timers, its end), not one per step. A run begun before the records
    existed replays without them (`workflow.patched`) and is recorded from its next run on.
    A record that keeps failing is logged and given up: the row lags, the saga goes on."""

    def __init__(self, start: SagaStart, started_at: datetime) -> None:
        self.started_at = started_at
        self._start = start
        self._on = workflow.patched(RECORD_INSTANCE_PATCH)
        self._recorded: dict[str, float] | None = None  # None: nothing recorded this run

    async def running(self, timers: dict[str, float], last: Event | None, busy: bool) -> None:
        """Before waiting: record the timers it waits on, if they changed. A run's first
        record waits while events are pending, since applying them changes what it shows."""
        if not self._on or timers == self._recorded or (self._recorded is None and busy):
            return
        if await self._record("running", None, timers, last):
            self._recorded = dict(timers)

    async def completed(self, outcome: str, last: Event | None) -> None:
        if self._on:
            await self._record("completed", outcome, {}, last)

    async def _record(
        self, status: Literal["running", "completed"], outcome: str | None,
        timers: dict[str, float], last: Event | None,
    ) -> bool:
        start = self._start
        record = InstanceRecord(
            saga=start.saga, tenant_id=start.tenant_id, instance=start.instance,
            workflow_id=workflow.info().workflow_id, status=status, outcome=outcome,
            started_at=self.started_at, recorded_at=workflow.now(),
            timers={name: datetime.fromtimestamp(at, UTC) for name, at in timers.items()},
            last_event_type=last.event_type if last else None,
        )
        try:
            await workflow.execute_activity(
                RECORD_INSTANCE, record, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10),
                                         maximum_attempts=10),
            )
        except ActivityError as exc:
            workflow.logger.warning("saga %s: instance record not written: %s",
                                    record.workflow_id, exc.cause or exc)
            return False
        return True


def _spot(event: Event) -> FeedSpot | None:
    if event.transaction_id is None or event.position is None:
        return None
    return (event.transaction_id, event.position)


@workflow.defn(name=SAGA_WORKFLOW)
class SagaWorkflow:
    def __init__(self) -> None:
        self._inbox: list[Event] = []

    @workflow.signal(name=SAGA_EVENT_SIGNAL)
    def event(self, event: Event) -> None:
        self._inbox.append(event)

    @workflow.run
    async def run(self, start: SagaStart) -> SagaOutcome:
        """The instance's whole life, one step at a time. Kept as one function (about 75
        lines): the run's state lives in its locals, which `handover` captures for
        continue-as-new at any step."""
        app = hosted(workflow.info().task_queue)
        saga = app.sagas.get(start.saga)
        carry = start.carry
        state = saga.state_model.model_validate(carry.state) if carry else saga.initial_state()
        # name -> workflow time (seconds since the epoch) it fires at
        timers = {name: at.timestamp() for name, at in carry.timers.items()} if carry else {}
        applied = AppliedEvents(start.applied_window, carry.applied if carry else None)
        seen = carry.events_seen if carry else 0
        issued: list[UUID] = list(carry.issued) if carry else []
        last: Event | None = carry.last_event if carry else None
        runs = carry.runs if carry else 1
        # Events the last run received but did not apply come first (before any signal
        # this run received already).
        self._inbox[:0] = carry.pending if carry else []
        outcome: str | None = None
        recorder = InstanceRecorder(start, carry.started_at if carry and carry.started_at
                                    else workflow.info().workflow_start_time)

        def handover() -> SagaCarry:
            return SagaCarry(
                state=state.model_dump(mode="json"),
                timers={name: datetime.fromtimestamp(at, UTC) for name, at in timers.items()},
                applied=applied.carry(),
                events_seen=seen,
                issued=issued[-ISSUED_KEPT:],
                last_event=last,
                runs=runs + 1,
                pending=list(self._inbox),
                started_at=recorder.started_at,
            )

        while outcome is None:
            # Between steps only: before waiting, and on waking before the next step.
            await self._continue_if_long(start, handover)
            await recorder.running(timers, last, busy=bool(self._inbox))
            due = min(timers.values()) if timers else None
            wait = None if due is None else max(0.0, due - workflow.time())
            with contextlib.suppress(TimeoutError):  # a timer is due
                await workflow.wait_condition(lambda: bool(self._inbox), timeout=wait)
            await self._continue_if_long(start, handover)
            actions: list[Action] = []
            for name, at in sorted(timers.items(), key=lambda item: item[1]):
                if at <= workflow.time():
                    del timers[name]
                    state, fired = saga.on_timer(state, name)
                    actions += fired
            while self._inbox and not any(isinstance(a, Complete) for a in actions):
                event = self._inbox.pop(0)
                if not applied.first_time(event):
                    continue
                seen += 1
                last = event
                state, answered = saga.react(state, app.registry.load_event(event))
                actions += answered
            for action in actions:
                match action:
                    case IssueCommand():
                        issued.append(await self._issue(start, action, last))
                    case StartTimer(name=name, after=after):
                        seconds = start.timer_seconds.get(name, after.total_seconds())
                        timers[name] = workflow.time() + seconds
                    case CancelTimer(name=name):
                        timers.pop(name, None)
                    case Complete(outcome=done):
                        outcome = done
                        break
        await recorder.completed(outcome, last)
        return SagaOutcome(
            saga=start.saga,
            instance=start.instance,
            outcome=outcome,
            events_seen=seen,
            commands_issued=issued[-ISSUED_KEPT:],
            runs=runs,
            state=state.model_dump(mode="json"),
        )

    async def _continue_if_long(
        self, start: SagaStart, carry: Callable[[], SagaCarry]
    ) -> None:
        """Continue as new once the history is long, handing over `carry()`. No signal is
        lost: once every handler has finished, each signal received is in the inbox (which
        `carry()` takes along), and one that arrives while this run closes makes Temporal
        refuse the close, so the task runs again with that signal in the inbox."""
        info = workflow.info()
        if info.get_current_history_length() < start.history_limit and (
            not info.is_continue_as_new_suggested()
        ):
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(start.model_copy(update={"carry": carry()}))

    async def _issue(
        self, start: SagaStart, action: IssueCommand, cause: Event | None
    ) -> UUID:
        request = IssueRequest(
            saga=start.saga,
            tenant_id=start.tenant_id,
            instance=start.instance,
            key=action.key,
            command_type=action.command_type,
            payload=dict(action.payload),
            correlation_id=cause.metadata.correlation_id if cause else workflow.uuid4(),
            causation_id=cause.event_id if cause else None,
            traceparent=cause.metadata.traceparent if cause else None,
        )
        await workflow.execute_activity(
            ISSUE_COMMAND,
            request,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                maximum_interval=timedelta(seconds=30),
                non_retryable_error_types=["InvalidSagaCommand"],
            ),
        )
        return saga_command_id(start.saga, start.tenant_id, start.instance, action.key)
