"""Spans, through the OpenTelemetry API only: `span(...)` for one piece of work, `SpanGroup`
for a batch's command spans, and the W3C trace-context plumbing the store carries.

Off (the default: no tracer provider installed) `span(...)` returns one shared no-op context
manager and `span_group()` None, so "off" costs a flag read per batch or page and nothing
per command; the tracer is the API's no-op one.

On, the trace context a command was submitted with (its metadata.traceparent) is the parent
of everything done for it: the pump's claim, the batch workflow and its activity (Temporal's
TracingInterceptor), the command's decide/append span, and through each appended event's
traceparent the projections and sagas after it. A span that covers work of many traces (a
batch, a page of events) takes one parent and links to the others.

Cost, on: every command gets a span of its own (the SDK's `Tracer.start_span`: ~15-20 us of
CPU each, export included, beside the ~500 us a command costs the pump and worker). What
keeps tracing within its budget (<= 10 % of the pipeline's throughput, `intent bench commands
--tracing`) is the standard sampler settings, read by the SDK's TracerProvider when it is
made: e.g. OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.1
records one batch in ten (the claim is a trace's root unless the commands came with a
context; every span after it follows its decision). A span that is not sampled costs a few
microseconds and still hands its context on, so a trace that was sampled upstream (a
submitted traceparent flagged 01) is recorded whole. Unset, the SDK's default records
everything (parentbased_always_on).

Process-wide state, switched by `use_tracer_provider`: the benchmark turns tracing on and off
between the sides of one run, tests install an in-memory exporter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import Attributes, AttributeValue

if TYPE_CHECKING:
    from temporalio.client import Interceptor

INSTRUMENTATION = "intent"
MAX_LINKS = 64  # a span over a full batch links at most this many other traces

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass
class _Tracing:
    on: bool = False
    tracer: Tracer = field(default_factory=trace.NoOpTracer)
    provider: TracerProvider | None = None


_tracing = _Tracing()
# What `span(...)` returns when tracing is off: reusable, shared by every caller.
_OFF: AbstractContextManager[Span] = nullcontext(INVALID_SPAN)


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Trace through `provider` from now on (None: back to the no-op tracer)."""
    _tracing.provider = provider
    _tracing.on = provider is not None
    _tracing.tracer = (
        provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.NoOpTracer()
    )


def tracing() -> bool:
    """Whether spans are recorded (for a process's start-up line and the like: call sites
    use `span(...)`, which tests this itself)."""
    return _tracing.on


def tracer() -> Tracer:
    return _tracing.tracer


def temporal_interceptors() -> list[Interceptor]:
    """Temporal's TracingInterceptor on our tracer, for a client (its workers inherit it);
    none when tracing is off, so Temporal's hot path is untouched then."""
    if not _tracing.on:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_tracing.tracer)]


# -- trace context -----------------------------------------------------------------------


def span_context(traceparent: str | None) -> SpanContext | None:
    """The remote span context a W3C traceparent names, or None."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None or match.group(1) == "ff":
        return None
    context = SpanContext(
        trace_id=int(match.group(2), 16),
        span_id=int(match.group(3), 16),
        is_remote=True,
        trace_flags=TraceFlags(int(match.group(4), 16)),
    )
    return context if context.is_valid else None


def traceparent_of(context: SpanContext) -> str | None:
    """The W3C traceparent of a span context (None for an invalid one, e.g. no-op)."""
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def current_traceparent() -> str | None:
    return traceparent_of(trace.get_current_span().get_span_context())


def _remote(context: SpanContext) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(context))


# -- one span ----------------------------------------------------------------------------


def span(
    name: str,
    attributes: Attributes = None,
    *,
    parent: str | Span | None = None,
    over: Iterable[str | None] = (),
    start_time: int | None = None,
) -> AbstractContextManager[Span]:
    """A span around a `with` block, current inside it (an exception escaping the block is
    recorded on it). When tracing is off, a shared no-op: nothing is built, `over` is not
    read, and the block sees the invalid span.

    Its parent (give `parent` or `over`, not both) is the first of:
      - `parent`, a span of this process (e.g. the claim, for the batch it dispatches);
      - `parent`, a W3C traceparent (e.g. the one an event carries); the current span is
        then linked when it is in another trace;
      - the current span;
      - with `over` (the traceparents of the work of many traces the span covers, e.g. a
        page of events), the first valid one. The others' traces are linked (once each, at
        most MAX_LINKS).
    """
    if not _tracing.on:
        return _OFF
    context: Context | None = None
    links: list[Link] = []
    here = trace.get_current_span().get_span_context()
    if isinstance(parent, str):
        remote = span_context(parent)
        if remote is not None:
            context = _remote(remote)
            if here.is_valid and here.trace_id != remote.trace_id:
                links.append(Link(here))
    elif parent is not None:
        context = trace.set_span_in_context(parent)
    else:
        context, links = _over(here, over)
    return _tracing.tracer.start_as_current_span(
        name, context=context, attributes=attributes, links=links, start_time=start_time,
    )


def _over(
    here: SpanContext, traceparents: Iterable[str | None]
) -> tuple[Context | None, list[Link]]:
    """The parent context (None: the current one) and links of a span over many traces."""
    first: SpanContext | None = here if here.is_valid else None
    links: list[Link] = []
    seen: set[int] = set() if first is None else {first.trace_id}
    for traceparent in traceparents:
        remote = span_context(traceparent)
        if remote is None or remote.trace_id in seen:
            continue
        seen.add(remote.trace_id)
        if first is None:
            first = remote
        elif len(links) < MAX_LINKS:
            links.append(Link(remote))
    return (_remote(first) if first is not None and not here.is_valid else None), links


def child_span(
    name: str, traceparent: str | None, attributes: Attributes = None
) -> AbstractContextManager[Span]:
    """`span(name, attributes, parent=traceparent)`, by its older name."""
    return span(name, attributes, parent=traceparent)


# -- many spans of one batch --------------------------------------------------------------

K = TypeVar("K", bound=Hashable)


class SpanGroup(Generic[K]):
    """One span per unit of work of a batch (a command), each started when its work starts
    (`Tracer.start_span`), all ended together when the batch is done, with the batch's
    outcome for each or the batch's error for all.

    A unit's parent is the span its traceparent names, else the span current when the
    group was made (the batch's); when those are in different traces, the unit's span
    links the batch's. The traceparent `start` returns names the unit's span, also when it
    is not sampled (then flagged so): the context flows on into what the unit writes.
    """

    def __init__(self) -> None:
        self._tracer = _tracing.tracer
        self._context = context_api.get_current()
        here = trace.get_current_span(self._context).get_span_context()
        self._here = here if here.is_valid else None
        self._links: tuple[Link, ...] = (Link(here),) if here.is_valid else ()
        self._spans: dict[K, Span] = {}

    def __len__(self) -> int:
        return len(self._spans)

    def start(self, key: K, name: str, traceparent: str | None,
              attributes: Attributes) -> str | None:
        """Start `key`'s span; its traceparent, for what the unit writes."""
        remote = span_context(traceparent)
        links: tuple[Link, ...] = ()
        if remote is None:
            context = self._context
        else:
            context = _remote(remote)
            here = self._here
            links = self._links if here is not None and here.trace_id != remote.trace_id else ()
        started = self._tracer.start_span(name, context, attributes=attributes, links=links)
        self._spans[key] = started
        return traceparent_of(started.get_span_context())

    def end(
        self,
        attributes: Mapping[K, Mapping[str, AttributeValue]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End every span (at one time): with `attributes[key]` added to its own, or with
        `error` recorded (an exception event, status ERROR) and nothing added."""
        ended = time.time_ns()
        if error is not None:
            status = Status(StatusCode.ERROR, type(error).__name__)
            for started in self._spans.values():
                started.record_exception(error)
                started.set_status(status)
                started.end(ended)
        else:
            for key, started in self._spans.items():
                if attributes is not None and (more := attributes.get(key)):
                    started.set_attributes(more)
                started.end(ended)
        self._spans.clear()


def span_group() -> SpanGroup[Any] | None:
    """A new group for a batch's spans, under the current span; None when tracing is off
    (callers skip the per-command work then)."""
    return SpanGroup() if _tracing.on else None
