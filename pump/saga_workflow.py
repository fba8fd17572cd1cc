"""One workflow per saga instance hosts its pure definition: events arrive as signals (each
applied once, by event id), timers are durable workflow timers, and commands are issued by
an activity that inserts them with ids derived from the step, so that a replayed or retried
step never issues a command twice."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from domain.app import registry, sagas
    from domain.contracts import Event
    from domain.saga import (
        Action,
        CancelTimer,
        Complete,
        IssueCommand,
        StartTimer,
        saga_command_id,
    )
    from pump.saga_contracts import (
        ISSUE_COMMAND,
        SAGA_EVENT_SIGNAL,
        SAGA_WORKFLOW,
        IssueRequest,
        SagaOutcome,
        SagaStart,
    )


@workflow.defn(name=SAGA_WORKFLOW)
class SagaWorkflow:
    def __init__(self) -> None:
        self._inbox: list[Event] = []
        self._seen: set[str] = set()

    @workflow.signal(name=SAGA_EVENT_SIGNAL)
    def event(self, event: Event) -> None:
        self._inbox.append(event)

    @workflow.run
    async def run(self, start: SagaStart) -> SagaOutcome:
        saga = sagas.get(start.saga)
        state = saga.initial_state()
        timers: dict[str, float] = {}  # name -> workflow time (seconds) it fires at
        issued: list[IssueRequest] = []
        last: Event | None = None
        outcome: str | None = None
        while outcome is None:
            due = min(timers.values()) if timers else None
            wait = None if due is None else max(0.0, due - workflow.time())
            with contextlib.suppress(TimeoutError):  # a timer is due
                await workflow.wait_condition(lambda: bool(self._inbox), timeout=wait)
            actions: list[Action] = []
            for name, at in sorted(timers.items(), key=lambda item: item[1]):
                if at <= workflow.time():
                    del timers[name]
                    state, fired = saga.on_timer(state, name)
                    actions += fired
            while self._inbox and not any(isinstance(a, Complete) for a in actions):
                event = self._inbox.pop(0)
                if str(event.event_id) in self._seen:
                    continue
                self._seen.add(str(event.event_id))
                last = event
                state, answered = saga.react(state, registry.load_event(event))
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
        return SagaOutcome(
            saga=start.saga,
            instance=start.instance,
            outcome=outcome,
            events_seen=len(self._seen),
            commands_issued=[
                saga_command_id(start.saga, start.tenant_id, start.instance, request.key)
                for request in issued
            ],
        )

    async def _issue(
        self, start: SagaStart, action: IssueCommand, cause: Event | None
    ) -> IssueRequest:
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
        return request

