"""Structured logs for the long-running `intent` processes (pump, worker, sagas, projections
run): one JSON object per line on stderr, or a readable line when stderr is a terminal.

A line is one meaningful thing (a command processed, rejected or failed; a batch; a
projection error; a saga step; a process starting or stopping), named by `event`, with the
ids that let an operator join it to the store and to traces: tenant, correlation_id,
trace_id, command_id, event_id, batch_id, duration_ms. Code logs through `log_event`; plain
`logging` calls from libraries come out in the same shape with `event` = "log".

INTENT_LOG_LEVEL (debug, info, warning, error; default info) sets the level. At info: process
start and stop, rejected commands, saga steps; errors (failed batches, projection errors) at
error. Every processed command and every batch is a debug line: at info a busy pipeline
would write a line per command, and a reader that falls behind (a full stderr pipe) would
stall the process that writes them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

LEVEL_VARIABLE = "INTENT_LOG_LEVEL"
_FIELDS = "intent_fields"
_EVENT = "intent_event"
# Attributes every LogRecord has: anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def log_event(
    logger: logging.Logger,
    event: str,
    message: str | None = None,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one structured line: `event` names what happened, `fields` carry the ids and
    figures (None values are left out). Cheap when the level is filtered out."""
    if not logger.isEnabledFor(level):
        return
    logger.log(
        level,
        message or event,
        extra={_EVENT: event, _FIELDS: {k: v for k, v in fields.items() if v is not None}},
        exc_info=exc_info,
    )


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, _FIELDS, None) or {})
    for key, value in vars(record).items():  # plain `extra=` from other call sites
        if key not in _STANDARD and key not in (_FIELDS, _EVENT) and not key.startswith("_"):
            fields.setdefault(key, value)
    if "trace_id" not in fields:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            fields["trace_id"] = f"{context.trace_id:032x}"
            fields.setdefault("span_id", f"{context.span_id:016x}")
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, event, process, logger, message, the fields."""

    def __init__(self, process: str):
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": getattr(record, _EVENT, "log"),
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class HumanFormatter(logging.Formatter):
    """For a terminal: time, level, the message, then the fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        event = getattr(record, _EVENT, None)
        message = record.getMessage()
        head = message if event is None or message == event else f"{event}: {message}"
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = f"{at} {record.levelname:<7} {head}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def level_from_env(default: str = "info") -> int:
    name = os.environ.get(LEVEL_VARIABLE, default).strip().upper()
    level = logging.getLevelNamesMapping().get(name)
    if level is None:
        raise ValueError(f"{LEVEL_VARIABLE}={name.lower()}: use debug, info, warning or error")
    return level


def setup_logging(
    process: str, *, stream: TextIO | None = None, human: bool | None = None
) -> logging.Handler:
    """Route every log record of this process to `stream` (stderr): JSON lines, or human
    lines when `human` (default: when the stream is a terminal). Replaces earlier handlers,
    so calling it twice does not double the lines."""
    stream = sys.stderr if stream is None else stream
    if human is None:
        human = stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(HumanFormatter() if human else JsonFormatter(process))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_from_env())
    # Libraries that talk a lot at info about their own plumbing.
    for noisy in ("psycopg.pool", "temporalio.worker._workflow_instance", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
