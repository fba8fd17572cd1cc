"""Tracing and metrics set-up: off unless OTEL_* asks, trace-context plumbing, span
parentage and links, and the gauges' sampled values (in-memory exporter and reader)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracer

from pump.observability import setup, telemetry

REPO = Path(__file__).resolve().parents[2]
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OTHER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, **extra}


def _probe(env: dict[str, str]) -> dict[str, object]:
    """What a fresh process sees after configuring itself from `env`."""
    code = (
        "import json, sys\n"
        "from opentelemetry import trace\n"
        "from pump.observability import telemetry\n"
        "shutdown = telemetry.configure_from_env('pump')\n"
        "print(json.dumps({'tracing': telemetry.tracing(), 'metering': telemetry.metering(),\n"
        "  'tracer': type(telemetry.tracer()).__name__,\n"
        "  'global_provider': type(trace.get_tracer_provider()).__name__,\n"
        "  'interceptors': len(telemetry.temporal_interceptors()),\n"
        "  'sdk_imported': 'opentelemetry.sdk' in sys.modules}))\n"
        "shutdown()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_with_no_otel_variables_the_tracer_is_the_no_op_one() -> None:
    seen = _probe(_clean_env())
    assert seen == {
        "tracing": False, "metering": False, "tracer": "NoOpTracer",
        "global_provider": "ProxyTracerProvider", "interceptors": 0, "sdk_imported": False,
    }


def test_the_console_exporter_turns_tracing_on_with_the_temporal_interceptor() -> None:
    seen = _probe(_clean_env(OTEL_TRACES_EXPORTER="console"))
    assert seen["tracing"] is True
    assert seen["metering"] is False
    assert seen["global_provider"] == "TracerProvider"
    assert seen["interceptors"] == 1


def test_the_sampler_follows_the_standard_variables() -> None:
    """What keeps tracing cheap on a busy pipeline: the SDK's sampler, from OTEL_*."""
    code = (
        "from opentelemetry import trace\n"
        "from pump.observability import telemetry\n"
        "shutdown = telemetry.configure_from_env('pump')\n"
        "print(trace.get_tracer_provider().sampler.get_description())\n"
        "shutdown()\n"
    )
    env = _clean_env(OTEL_TRACES_EXPORTER="console",
                     OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0.1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    sampler = proc.stdout.strip().splitlines()[-1]
    assert sampler.startswith("ParentBased{root:TraceIdRatioBased{0.1}")


def test_exporter_choice_follows_the_standard_variables() -> None:
    assert setup._exporters({}, "TRACES") == []
    assert setup._exporters({"OTEL_TRACES_EXPORTER": "none"}, "TRACES") == []
    assert setup._exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
                            "METRICS") == ["otlp"]
    assert setup._exporters(
        {"OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_SDK_DISABLED": "true"}, "TRACES") == []
    with pytest.raises(ValueError, match="zipkin"):
        setup._exporters({"OTEL_TRACES_EXPORTER": "zipkin"}, "TRACES")


def test_off_by_default_in_this_process_too() -> None:
    assert telemetry.tracing() is False
    assert isinstance(telemetry.tracer(), NoOpTracer)
    assert telemetry.instruments() is None
    telemetry.set_gauge("intent.sagas", 3, state="running")  # a no-op, not an error


def test_off_a_span_is_the_shared_no_op_and_reads_nothing() -> None:
    def never() -> Iterator[str | None]:
        raise AssertionError("read the traceparents with tracing off")
        yield None

    first = telemetry.span("a", {"k": "v"}, over=never())
    assert first is telemetry.span("b", parent=PARENT)
    with first as span:
        assert not span.is_recording()
        assert telemetry.current_traceparent() is None
    assert telemetry.span_group() is None


def test_traceparents_round_trip_and_invalid_ones_are_none() -> None:
    context = telemetry.span_context(PARENT)
    assert context is not None
    assert context.is_remote
    assert telemetry.traceparent_of(context) == PARENT
    for bad in (None, "", "00-nonsense", "ff-" + PARENT[3:],
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"):
        assert telemetry.span_context(bad) is None


def test_a_child_span_continues_the_given_trace(spans: InMemorySpanExporter) -> None:
    with telemetry.child_span("work", PARENT, {"intent.k": "v"}) as span:
        inner = telemetry.current_traceparent()
    (finished,) = spans.get_finished_spans()
    assert finished.context is not None
    assert finished.parent is not None
    assert f"{finished.context.trace_id:032x}" == PARENT.split("-")[1]
    assert f"{finished.parent.span_id:016x}" == PARENT.split("-")[2]
    assert inner == telemetry.traceparent_of(span.get_span_context())
    assert finished.attributes == {"intent.k": "v"}


def test_a_span_over_many_traces_takes_one_parent_and_links_the_rest(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.span("page", over=[None, PARENT, OTHER, PARENT, OTHER]):
        pass
    (finished,) = spans.get_finished_spans()
    assert finished.parent is not None
    assert f"{finished.parent.span_id:016x}" == PARENT.split("-")[2]
    assert [f"{link.context.trace_id:032x}" for link in finished.links] == [
        OTHER.split("-")[1]
    ]


def test_inside_a_current_span_a_span_over_many_is_its_child(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.child_span("batch", None) as outer, \
            telemetry.span("project", over=[PARENT, OTHER]):
        pass
    inner = next(s for s in spans.get_finished_spans() if s.name == "project")
    assert inner.parent is not None
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert len(inner.links) == 2


def test_a_span_in_another_trace_links_the_current_one(
    spans: InMemorySpanExporter,
) -> None:
    with telemetry.child_span("activity", None) as activity, \
            telemetry.span("command", parent=PARENT):
        pass
    command = next(s for s in spans.get_finished_spans() if s.name == "command")
    assert command.parent is not None
    assert f"{command.parent.span_id:016x}" == PARENT.split("-")[2]
    assert [link.context.span_id for link in command.links] == [
        activity.get_span_context().span_id
    ]


def test_metrics_record_and_gauges_report_their_last_sample() -> None:
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    try:
        found = telemetry.instruments()
        assert found is not None
        found.commands.add(2, {"status": "processed"})
        telemetry.set_gauge("intent.projection.lag.events", 5, consumer="projection:x@1")
        telemetry.set_gauge("intent.projection.lag.events", 7, consumer="projection:x@1")
        data = reader.get_metrics_data()
    finally:
        telemetry.use_meter_provider(None)
    assert data is not None
    points = {
        metric.name: [(dict(p.attributes or {}), p.value)  # type: ignore[union-attr]
                      for p in metric.data.data_points]
        for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
    }
    assert points["intent.commands"] == [({"status": "processed"}, 2)]
    assert points["intent.projection.lag.events"] == [({"consumer": "projection:x@1"}, 7)]
