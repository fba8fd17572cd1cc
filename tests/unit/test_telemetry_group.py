"""SpanGroup: a batch's command spans made in bulk on the SDK's tracer are the spans the
tracer's ordinary path makes (same ids from the same id generator, same parents, links,
attributes, status, events, sampling), and the traceparents it hands out are the same."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes

from pump import telemetry

OTHER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-00"


class CountingIds(IdGenerator):
    """Ids in order (1, 2, ...), so that two providers fed the same calls hand out the
    same ids; says its trace ids are random, so the W3C random flag is exercised."""

    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return (self.next << 64) | 0xABC

    def is_trace_id_random(self) -> bool:
        return True


class Tagging(Sampler):
    """Samples everything and adds an attribute of its own, with a trace state."""

    def should_sample(
        self, parent_context: Context | None, trace_id: int, name: str,
        kind: SpanKind | None = None, attributes: Attributes = None,
        links: Sequence[Link] | None = None, trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE,
                              {**(attributes or {}), "sampler.saw": name},
                              TraceState([("intent", "t")]))

    def get_description(self) -> str:
        return "Tagging"


class OtherProcessor(SimpleSpanProcessor):
    """A processor SpanGroup does not know: it takes the tracer's ordinary path."""


def traced_with(sampler: Sampler, *, known: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=CountingIds())
    processor = SimpleSpanProcessor(exporter) if known else OtherProcessor(exporter)
    provider.add_span_processor(processor)
    return provider, exporter


COMMANDS: list[tuple[str, str | None]] = [
    ("a", None),            # child of the batch's span
    ("b", OTHER_TRACE),     # another trace: its parent, and a link to the batch's span
    ("c", UNSAMPLED),       # a parent that is not sampled: no span, the context flows on
    ("d", None),
]


def run_batch(
    provider: TracerProvider, *, current: bool = True, error: BaseException | None = None
) -> list[str | None]:
    """One batch's spans as the batch processor makes them; the traceparents handed out."""
    telemetry.use_tracer_provider(provider)
    try:
        if current:
            with telemetry.tracer().start_as_current_span("batch"):
                handed = _group(error)
        else:
            handed = _group(error)
    finally:
        telemetry.use_tracer_provider(None)
    return handed


def _group(error: BaseException | None) -> list[str | None]:
    group: telemetry.SpanGroup[str] = telemetry.SpanGroup()
    handed = [group.start(key, f"intent.command t.{key}", traceparent,
                          {"intent.command_id": key, "intent.tenant_id": "t"})
              for key, traceparent in COMMANDS]
    group.end({"a": {"intent.status": "processed"},
               "b": {"intent.status": "rejected", "intent.rejection": "nope"}}, error)
    assert len(group) == 0
    return handed


def comparable(span: ReadableSpan) -> dict[str, Any]:
    """What an exporter sees of a span, less its timestamps."""
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.start_time <= span.end_time
    return {
        "name": span.name, "context": span.context, "parent": span.parent,
        "kind": span.kind, "attributes": dict(span.attributes or {}),
        "dropped_attributes": span.dropped_attributes,
        "status": (span.status.status_code, span.status.description),
        "events": [(e.name, dict(e.attributes or {})) for e in span.events],
        "links": [(link.context, dict(link.attributes or {}), link.dropped_attributes)
                  for link in span.links],
        "resource": span.resource.attributes, "scope": span.instrumentation_scope,
    }


def both_paths(
    sampler: Sampler, **kwargs: Any
) -> tuple[list[str | None], list[dict[str, Any]], list[dict[str, Any]]]:
    fast, fast_spans = traced_with(sampler, known=True)
    slow, slow_spans = traced_with(sampler, known=False)
    fast_handed = run_batch(fast, **kwargs)
    slow_handed = run_batch(slow, **kwargs)
    assert fast_handed == slow_handed
    return (fast_handed, [comparable(s) for s in fast_spans.get_finished_spans()],
            [comparable(s) for s in slow_spans.get_finished_spans()])


@pytest.fixture(autouse=True)
def tracing_off_after() -> Iterator[None]:
    yield
    telemetry.use_tracer_provider(None)


def test_the_sdk_path_is_taken_only_for_processors_that_ignore_a_spans_start() -> None:
    fast, _ = traced_with(ALWAYS_ON, known=True)
    slow, _ = traced_with(ALWAYS_ON, known=False)
    assert telemetry._sdk_path(fast.get_tracer(telemetry.INSTRUMENTATION)) is not None
    assert telemetry._sdk_path(slow.get_tracer(telemetry.INSTRUMENTATION)) is None


def test_bulk_spans_are_the_tracers_spans() -> None:
    handed, fast, slow = both_paths(ParentBased(ALWAYS_ON))
    assert fast == slow
    by_name = {s["name"]: s for s in fast}
    assert sorted(by_name) == ["batch", "intent.command t.a", "intent.command t.b",
                               "intent.command t.d"]
    batch = by_name["batch"]["context"]
    a, b = by_name["intent.command t.a"], by_name["intent.command t.b"]
    assert a["parent"] == batch
    assert a["links"] == []
    assert a["attributes"] == {"intent.command_id": "a", "intent.tenant_id": "t",
                               "intent.status": "processed"}
    assert f"{b['parent'].span_id:016x}" == OTHER_TRACE.split("-")[2]
    assert [link[0] for link in b["links"]] == [batch]
    assert b["attributes"]["intent.rejection"] == "nope"
    assert "intent.status" not in by_name["intent.command t.d"]["attributes"]
    # Each handed-out traceparent names its command's span; the unsampled one a new span
    # in its parent's trace, flagged not sampled.
    assert handed[0] == telemetry.traceparent_of(a["context"])
    assert handed[1] == telemetry.traceparent_of(b["context"])
    unsampled = telemetry.span_context(handed[2])
    assert unsampled is not None
    assert f"{unsampled.trace_id:032x}" == UNSAMPLED.split("-")[1]
    assert not unsampled.trace_flags.sampled
    assert unsampled.span_id not in {s["context"].span_id for s in fast}


def test_without_a_current_span_each_command_without_context_is_a_root() -> None:
    handed, fast, slow = both_paths(ParentBased(ALWAYS_ON), current=False)
    assert fast == slow
    roots = [s for s in fast if s["parent"] is None]
    assert [s["name"] for s in roots] == ["intent.command t.a", "intent.command t.d"]
    assert roots[0]["context"].trace_id != roots[1]["context"].trace_id
    assert handed[0] is not None
    assert handed[0].endswith("-03")  # sampled, random trace id


def test_an_error_is_recorded_on_every_span_alike() -> None:
    try:
        raise RuntimeError("database went away")
    except RuntimeError as exc:
        error = exc
    _, fast, slow = both_paths(ParentBased(ALWAYS_ON), error=error)
    assert fast == slow
    commands = [s for s in fast if s["name"].startswith("intent.command")]
    assert len(commands) == 3
    for span in commands:
        assert span["status"][1] == "RuntimeError"
        assert "intent.status" not in span["attributes"]
        ((name, attributes),) = span["events"]
        assert name == "exception"
        assert attributes["exception.type"] == "RuntimeError"
        assert attributes["exception.message"] == "database went away"
        assert "database went away" in attributes["exception.stacktrace"]


@pytest.mark.parametrize("sampler", [
    ALWAYS_OFF, ParentBased(ALWAYS_OFF), ParentBased(TraceIdRatioBased(0.5)), Tagging(),
], ids=["always_off", "parent_based_off", "ratio", "tagging"])
def test_the_providers_sampler_decides_alike(sampler: Sampler) -> None:
    handed, fast, slow = both_paths(sampler)
    assert fast == slow
    assert all(telemetry.span_context(tp) is not None for tp in handed)
    if isinstance(sampler, Tagging):
        a = next(s for s in fast if s["name"] == "intent.command t.a")
        assert a["attributes"]["sampler.saw"] == "intent.command t.a"
        assert a["context"].trace_state == TraceState([("intent", "t")])
    if sampler is ALWAYS_OFF:
        assert fast == []
