"""Traces and metrics, configured from the standard OTEL_* variables, off by default: the
one name the rest of Intent imports (`from pump.observability import telemetry`).

  - pump.observability.tracing: `span(...)` (one span around a block; a shared no-op when
    tracing is off), `span_group()` (a batch's command spans), the W3C trace-context
    helpers, the switch (`use_tracer_provider`) and Temporal's interceptor;
  - pump.observability.metrics: the instruments, `set_gauge`, `use_meter_provider`;
  - pump.observability.setup: `configure_from_env`, for a long-running process.

Everything goes through the OpenTelemetry API; the SDK is imported only when a process is
configured to export (or by tests and the benchmark, which install providers of their own).
"""

from __future__ import annotations

from pump.observability.metrics import (
    Instruments,
    instruments,
    metering,
    set_gauge,
    use_meter_provider,
)
from pump.observability.setup import configure_from_env
from pump.observability.tracing import (
    INSTRUMENTATION,
    MAX_LINKS,
    SpanGroup,
    child_span,
    current_traceparent,
    span,
    span_context,
    span_group,
    temporal_interceptors,
    traceparent_of,
    tracer,
    tracing,
    use_tracer_provider,
)

__all__ = [
    "INSTRUMENTATION",
    "MAX_LINKS",
    "Instruments",
    "SpanGroup",
    "child_span",
    "configure_from_env",
    "current_traceparent",
    "instruments",
    "metering",
    "set_gauge",
    "span",
    "span_context",
    "span_group",
    "temporal_interceptors",
    "traceparent_of",
    "tracer",
    "tracing",
    "use_meter_provider",
    "use_tracer_provider",
]
