"""Structured logs: JSON lines with the operator's fields, readable lines on a terminal,
the level from INTENT_LOG_LEVEL."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from pump.observability import telemetry
from pump.observability.logs import log_event, setup_logging

log = logging.getLogger("intent.test")

FIELDS: dict[str, Any] = {
    "tenant": "8e7a54c2-7c39-4a43-a5d8-2b0a3f0b6b11",
    "correlation_id": "99999999-8888-4777-8666-555555555555",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "command_id": "11111111-2222-4333-8444-555555555555",
    "event_id": "6f1c2a34-1b2c-4d5e-8f90-123456789abc",
    "duration_ms": 12.5,
}


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_log_event_is_one_json_line_with_the_operator_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTENT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    setup_logging("pump", stream=stream)  # a StringIO is no terminal: JSON
    log_event(log, "command.processed", batch_id=None, **FIELDS)
    (line,) = _lines(stream)
    assert line["event"] == "command.processed"
    assert line["level"] == "info"
    assert line["process"] == "pump"
    assert isinstance(line["ts"], str)
    assert line["ts"].endswith("+00:00")
    for key, value in FIELDS.items():
        assert line[key] == value
    assert "batch_id" not in line  # None fields are left out


def test_plain_logging_comes_out_as_json_too_with_the_current_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("INTENT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    setup_logging("worker", stream=stream, human=False)
    telemetry.use_tracer_provider(TracerProvider())
    try:
        with telemetry.child_span("work", None) as span:
            logging.getLogger("some.library").warning("disk %s is slow", "sda")
    finally:
        telemetry.use_tracer_provider(None)
    (line,) = _lines(stream)
    assert line["event"] == "log"
    assert line["level"] == "warning"
    assert line["message"] == "disk sda is slow"
    assert line["trace_id"] == f"{span.get_span_context().trace_id:032x}"


def test_exceptions_are_kept_in_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTENT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    setup_logging("pump", stream=stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log_event(log, "batch.dispatch_failed", level=logging.ERROR, exc_info=True)
    (line,) = _lines(stream)
    assert line["level"] == "error"
    assert "RuntimeError: boom" in str(line["error"])


def test_the_level_comes_from_intent_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENT_LOG_LEVEL", "warning")
    stream = io.StringIO()
    setup_logging("sagas", stream=stream)
    log_event(log, "saga.step")
    log_event(log, "saga.failed", level=logging.WARNING)
    assert [line["event"] for line in _lines(stream)] == ["saga.failed"]
    monkeypatch.setenv("INTENT_LOG_LEVEL", "chatty")
    with pytest.raises(ValueError, match="INTENT_LOG_LEVEL"):
        setup_logging("sagas", stream=stream)


def test_on_a_terminal_lines_are_for_humans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTENT_LOG_LEVEL", raising=False)
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty:
        assert tty.isatty()
        setup_logging("projections", stream=tty)
        log_event(log, "projection.error", "projection x stopped at event e",
                  level=logging.ERROR, projection="x", event_id=FIELDS["event_id"])
        tty.flush()
        written = os.read(leader, 4096).decode()
    os.close(leader)
    assert not written.lstrip().startswith("{")
    assert "ERROR" in written
    assert "projection.error: projection x stopped at event e" in written
    assert f"event_id={FIELDS['event_id']}" in written


def test_setting_up_twice_does_not_double_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTENT_LOG_LEVEL", raising=False)
    stream = io.StringIO()
    setup_logging("pump", stream=stream)
    setup_logging("pump", stream=stream)
    log_event(log, "process.start")
    assert len(_lines(stream)) == 1
