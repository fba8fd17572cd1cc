"""SpanGroup: a batch's command spans, made through the tracer's public API: their names,
parents (the command's own trace context, else the batch's span), links (to the batch's
span, from a command of another trace), attributes (at the start, then the outcome),
status and exception events (the batch's error), the sampler's say, and the traceparents
handed out for the events (also for a span that is not sampled)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
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
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceState
from opentelemetry.util.types import Attributes

from pump.observability import telemetry
from tests.support.telemetry import Watching

OTHER_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-00"


class CountingIds(IdGenerator):
    """Ids in order (1, 2, ...); says its trace ids are random, so the W3C random flag is
    exercised."""

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


def traced_with(sampler: Sampler) -> tuple[TracerProvider, InMemorySpanExporter, Watching]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler, id_generator=CountingIds())
    watching = Watching(exporter)
    provider.add_span_processor(watching)
    return provider, exporter, watching


COMMANDS: list[tuple[str, str | None]] = [
    ("a", None),            # child of the batch's span
    ("b", OTHER_TRACE),     # another trace: its parent, and a link to the batch's span
    ("c", UNSAMPLED),       # a parent that is not sampled: no span, the context flows on
    ("d", None),
]


def run_batch(
    sampler: Sampler, *, current: bool = True, error: BaseException | None = None
) -> tuple[list[str | None], dict[str, ReadableSpan], Watching]:
    """One batch's spans as the batch processor makes them: the traceparents handed out,
    the finished spans by name, the processor that watched them start."""
    provider, exporter, watching = traced_with(sampler)
    telemetry.use_tracer_provider(provider)
    try:
        if current:
            with telemetry.tracer().start_as_current_span("batch"):
                handed = _group(error)
        else:
            handed = _group(error)
    finally:
        telemetry.use_tracer_provider(None)
    return handed, {s.name: s for s in exporter.get_finished_spans()}, watching


def _group(error: BaseException | None) -> list[str | None]:
    group = telemetry.span_group()
    assert group is not None
    handed = [group.start(key, f"intent.command t.{key}", traceparent,
                          {"intent.command_id": key, "intent.tenant_id": "t"})
              for key, traceparent in COMMANDS]
    group.end({"a": {"intent.status": "processed"},
               "b": {"intent.status": "rejected", "intent.rejection": "nope"}}, error)
    assert len(group) == 0
    return handed


def context(span: ReadableSpan) -> SpanContext:
    found: SpanContext | None = span.context
    assert found is not None
    return found


@pytest.fixture(autouse=True)
def tracing_off_after() -> Iterator[None]:
    yield
    telemetry.use_tracer_provider(None)


def test_each_command_has_its_span_under_its_own_context_or_the_batchs() -> None:
    handed, by_name, watching = run_batch(ParentBased(ALWAYS_ON))
    assert sorted(by_name) == ["batch", "intent.command t.a", "intent.command t.b",
                               "intent.command t.d"]
    batch = context(by_name["batch"])
    a, b = by_name["intent.command t.a"], by_name["intent.command t.b"]
    assert a.parent == batch
    assert list(a.links) == []
    assert a.kind is SpanKind.INTERNAL
    assert dict(a.attributes or {}) == {"intent.command_id": "a", "intent.tenant_id": "t",
                                        "intent.status": "processed"}
    assert a.status.status_code is StatusCode.UNSET
    assert not a.events
    assert b.parent is not None
    assert f"{b.parent.span_id:016x}" == OTHER_TRACE.split("-")[2]
    assert f"{context(b).trace_id:032x}" == OTHER_TRACE.split("-")[1]
    assert [link.context for link in b.links] == [batch]
    assert dict(b.attributes or {})["intent.rejection"] == "nope"
    assert "intent.status" not in (by_name["intent.command t.d"].attributes or {})
    # The spans of a batch end together, after they all started.
    ends = {by_name[f"intent.command t.{k}"].end_time for k in "abd"}
    assert len(ends) == 1
    # Every processor saw every recorded span start (the unsampled one is not recorded).
    assert watching.started == ["batch", "intent.command t.a", "intent.command t.b",
                                "intent.command t.d"]
    # Each handed-out traceparent names its command's span; the unsampled one a new span
    # in its parent's trace, flagged not sampled.
    assert handed[0] == telemetry.traceparent_of(context(a))
    assert handed[1] == telemetry.traceparent_of(context(b))
    unsampled = telemetry.span_context(handed[2])
    assert unsampled is not None
    assert f"{unsampled.trace_id:032x}" == UNSAMPLED.split("-")[1]
    assert not unsampled.trace_flags.sampled
    assert unsampled.span_id not in {context(s).span_id for s in by_name.values()}
    assert f"{unsampled.span_id:016x}" != UNSAMPLED.split("-")[2]


def test_without_a_current_span_each_command_without_context_is_a_root() -> None:
    handed, by_name, _ = run_batch(ParentBased(ALWAYS_ON), current=False)
    roots = [s for s in by_name.values() if s.parent is None]
    assert sorted(s.name for s in roots) == ["intent.command t.a", "intent.command t.d"]
    assert context(roots[0]).trace_id != context(roots[1]).trace_id
    assert all(not s.links for s in by_name.values())
    assert handed[0] is not None
    assert handed[0].endswith("-03")  # sampled, random trace id


def test_an_error_is_recorded_on_every_span_alike() -> None:
    try:
        raise RuntimeError("database went away")
    except RuntimeError as exc:
        error = exc
    _, by_name, _ = run_batch(ParentBased(ALWAYS_ON), error=error)
    commands = [s for name, s in by_name.items() if name.startswith("intent.command")]
    assert len(commands) == 3
    for span in commands:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "RuntimeError"
        assert "intent.status" not in (span.attributes or {})
        (event,) = span.events
        attributes: dict[str, Any] = dict(event.attributes or {})
        assert event.name == "exception"
        assert attributes["exception.type"] == "RuntimeError"
        assert attributes["exception.message"] == "database went away"
        assert "database went away" in attributes["exception.stacktrace"]


@pytest.mark.parametrize("sampler", [
    ALWAYS_OFF, ParentBased(ALWAYS_OFF), ParentBased(TraceIdRatioBased(0.5)), Tagging(),
], ids=["always_off", "parent_based_off", "ratio", "tagging"])
def test_the_providers_sampler_decides(sampler: Sampler) -> None:
    handed, by_name, _ = run_batch(sampler)
    assert all(telemetry.span_context(tp) is not None for tp in handed)
    if isinstance(sampler, Tagging):
        a = by_name["intent.command t.a"]
        assert (a.attributes or {})["sampler.saw"] == "intent.command t.a"
        assert context(a).trace_state == TraceState([("intent", "t")])
        assert "intent.command t.c" in by_name  # it samples even under an unsampled parent
    if sampler is ALWAYS_OFF:
        assert by_name == {}
        assert all(tp is not None and tp.endswith("-02") for tp in handed[:1])
    if isinstance(sampler, ParentBased):
        # A parent's decision holds: the sampled trace of b is recorded under the
        # batch's unsampled one, c's unsampled one is not.
        assert "intent.command t.c" not in by_name
        assert "intent.command t.b" in by_name
