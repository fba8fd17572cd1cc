"""What a processed batch tells the outside: each command's span (tracing on), the log
lines (one per command at debug, rejections at info, one per batch) and the metrics. Kept
apart from the batch processor, whose job is the one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from pump.observability import telemetry
from pump.observability.logs import log_event
from pump.store.commands import Outcomes, StoredCommand

# The processor's logger: its lines keep the name they always had.
log = logging.getLogger("pump.batches.processor")

# The batch's command spans, by command id, while it is processed (tracing on only).
Spans = telemetry.SpanGroup[UUID]


@dataclass(frozen=True)
class BatchResult:
    batch_id: UUID
    processed: int
    rejected: int
    skipped: bool  # nothing was open: an earlier processing had committed it
    events: int
    failed: int = 0  # commands at fault, recorded failed on the batch's last attempt
    # Commands left open behind a command at fault (isolation before the last attempt),
    # and that command's error: the batch is not finished and must be retried.
    held: int = 0
    fault: BaseException | None = None


def command_span(spans: Spans, stored: StoredCommand) -> str | None:
    """Start the command's span (ended with its batch); the traceparent its events carry."""
    command = stored.command
    # Few attributes: this span is made for every command (the aggregate type is in the
    # command type; the correlation id is on the trace's ingress span and in the events).
    return spans.start(
        command.command_id, f"intent.command {command.command_type}",
        command.metadata.traceparent,
        {"intent.command_id": str(command.command_id),
         "intent.tenant_id": str(stored.stream.tenant_id),
         "intent.aggregate_id": str(stored.stream.aggregate_id)},
    )


def end_spans(
    spans: Spans, *, outcomes: Outcomes | None = None, error: BaseException | None = None
) -> None:
    """End the batch's command spans: each with its command's outcome, or all with the
    batch's error."""
    finished: dict[UUID, dict[str, str]] = {}
    if outcomes is not None and error is None:
        for outcome in outcomes.items:
            finished[outcome.command_id] = (
                {"intent.status": outcome.status,
                 "intent.rejection": str(outcome.error.get("code"))} if outcome.error
                else {"intent.status": outcome.status}
            )
    spans.end(finished, error)


def timed_append(started: float) -> None:
    found = telemetry.instruments()
    if found is not None:
        found.append_duration.record(time.perf_counter() - started)


def report(
    result: BatchResult, commands: Sequence[StoredCommand], outcomes: Outcomes, started: float
) -> None:
    """One log line per command and one per batch; the batch's metrics. Work is skipped
    when neither the log level nor metrics want it."""
    found = telemetry.instruments()
    # Processed commands and batches at debug (at info a busy pipeline would write a line
    # per command); rejections at info.
    per_command = log.isEnabledFor(logging.INFO)
    debug = log.isEnabledFor(logging.DEBUG)
    if result.skipped or not (found is not None or per_command):
        return
    now = datetime.now(UTC)
    by_id = {c.command.command_id: c for c in commands}
    for outcome in outcomes.items:
        stored = by_id.get(outcome.command_id)
        if stored is None:
            continue
        command = stored.command
        waited = (now - command.metadata.occurred_at).total_seconds()
        if found is not None:
            kind = {"status": outcome.status, "command_type": command.command_type}
            found.commands.add(1, kind)
            found.command_latency.record(waited, kind)
        if per_command and (outcome.status != "processed" or debug):
            context = telemetry.span_context(command.metadata.traceparent)
            log_event(
                log, f"command.{outcome.status}",
                level=logging.DEBUG if outcome.status == "processed" else logging.INFO,
                tenant=str(stored.stream.tenant_id),
                correlation_id=str(command.metadata.correlation_id),
                trace_id=f"{context.trace_id:032x}" if context else None,
                command_id=str(command.command_id), command_type=command.command_type,
                batch_id=str(result.batch_id),
                events=outcome.result.get("events") if outcome.result else None,
                code=outcome.error.get("code") if outcome.error else None,
                duration_ms=round(waited * 1000, 3),
            )
    if found is not None:
        found.batch_size.record(len(commands))
    log_event(log, "batch", level=logging.DEBUG, batch_id=str(result.batch_id),
              commands=len(commands), processed=result.processed, rejected=result.rejected,
              events=result.events,
              duration_ms=round((time.perf_counter() - started) * 1000, 3))
