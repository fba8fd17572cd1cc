"""Tracing and metrics for a long-running process, set up from the standard OTEL_*
variables: off by default (no OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, nor an OTLP
endpoint), and then nothing is imported from the SDK.

The SDK reads the rest of the standard variables itself: OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (the resource), OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the
sampler: how tracing is kept cheap on a busy pipeline, see pump.observability.tracing),
OTEL_BSP_* (span batching), OTEL_EXPORTER_OTLP_* (where to)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from pump.observability.metrics import use_meter_provider
from pump.observability.tracing import use_tracer_provider

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

KNOWN_EXPORTERS = ("otlp", "console", "none")


def _exporters(env: Mapping[str, str], kind: str) -> list[str]:
    """OTEL_<KIND>_EXPORTER as a list; unset means none, except that an OTLP endpoint alone
    asks for otlp (what the standard's default would do, without exporting by surprise)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get(f"OTEL_{kind}_EXPORTER")
    if raw is None:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(
            f"OTEL_EXPORTER_OTLP_{kind}_ENDPOINT"
        )
        return ["otlp"] if endpoint else []
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN_EXPORTERS]
    if unknown:
        raise ValueError(f"OTEL_{kind}_EXPORTER: unsupported exporter(s) {', '.join(unknown)}"
                         " (intent knows otlp, console and none)")
    return [n for n in names if n != "none"]


def configure_from_env(
    service: str, env: Mapping[str, str] | None = None
) -> Callable[[], None]:
    """Set up tracing and metrics for a long-running process as the OTEL_* variables say;
    return the shutdown to call on the way out (it flushes what is buffered). With nothing
    configured, nothing is imported from the SDK and the shutdown does nothing."""
    env = os.environ if env is None else env
    span_exporters = _exporters(env, "TRACES")
    metric_exporters = _exporters(env, "METRICS")
    if not span_exporters and not metric_exporters:
        return lambda: None
    from opentelemetry.sdk.resources import Resource

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {"service.name": f"intent-{service}"}
    resource = Resource.create(attributes)
    shutdowns: list[Callable[[], Any]] = []
    if span_exporters:
        shutdowns.append(_tracing(resource, span_exporters))
    if metric_exporters:
        shutdowns.append(_metrics(resource, metric_exporters))

    def shutdown() -> None:
        for stop in shutdowns:
            stop()

    return shutdown


def _tracing(resource: Resource, exporters: list[str]) -> Callable[[], Any]:
    """The SDK's tracer provider (its sampler from OTEL_TRACES_SAMPLER), batching spans to
    each exporter, installed globally and as ours; its shutdown."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    provider = TracerProvider(resource=resource)
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    use_tracer_provider(provider)
    return provider.shutdown


def _metrics(resource: Resource, exporters: list[str]) -> Callable[[], Any]:
    """The SDK's meter provider, read periodically into each exporter, installed globally
    and as ours; its shutdown."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )

    readers: list[MetricReader] = []
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        else:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    provider = MeterProvider(metric_readers=readers, resource=resource)
    metrics.set_meter_provider(provider)
    use_meter_provider(provider)
    return provider.shutdown
