"""Traces and metrics, configured from the standard OTEL_* variables, off by default.

Off (no OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, nor an OTLP endpoint) every helper
here returns at once: `tracing()` is a plain bool the hot paths test before building any
span, and the tracer is the API's no-op one. So "off" costs one attribute read per batch or
page, nothing per command.

On, the trace context a command was submitted with (its metadata.traceparent) is the parent
of everything done for it: the pump's claim, the batch workflow and its activity (Temporal's
TracingInterceptor), the command's decide/append span, and through each appended event's
traceparent the projections and sagas after it. A span that covers work of many traces (a
batch, a page of events) takes one parent and links to the others. A batch's command spans
are made together (SpanGroup): on the SDK's tracer that is several times cheaper per span.

Process-wide state, switched by `use_tracer_provider` / `use_meter_provider`: the benchmark
turns tracing on and off between the sides of one run, tests install an in-memory exporter.
"""

from __future__ import annotations

import os
import re
import time
import traceback
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from opentelemetry import context as context_api
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import Event as SpanEvent
    from opentelemetry.sdk.trace import SpanLimits, SpanProcessor
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from temporalio.client import Interceptor

INSTRUMENTATION = "intent"
MAX_LINKS = 64  # a span over a full batch links at most this many other traces

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass
class _Tracing:
    on: bool = False
    tracer: Tracer = field(default_factory=trace.NoOpTracer)
    provider: TracerProvider | None = None
    sdk_path: _SdkPath | None = None  # what SpanGroup last found of the SDK's tracer


@dataclass
class _Metering:
    on: bool = False
    meter: Meter = field(default_factory=lambda: metrics.NoOpMeter(INSTRUMENTATION))
    provider: MeterProvider | None = None
    instruments: Instruments | None = None


_tracing = _Tracing()
_metering = _Metering()


# -- configuration -----------------------------------------------------------------------


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
    unknown = [n for n in names if n not in ("otlp", "console", "none")]
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
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

        tracer_provider = SdkTracerProvider(resource=resource)
        for name in span_exporters:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            else:
                tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(tracer_provider)
        use_tracer_provider(tracer_provider)
        shutdowns.append(tracer_provider.shutdown)
    if metric_exporters:
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            MetricReader,
            PeriodicExportingMetricReader,
        )

        readers: list[MetricReader] = []
        for name in metric_exporters:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter,
                )

                readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
            else:
                readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
        meter_provider = SdkMeterProvider(metric_readers=readers, resource=resource)
        metrics.set_meter_provider(meter_provider)
        use_meter_provider(meter_provider)
        shutdowns.append(meter_provider.shutdown)

    def shutdown() -> None:
        for stop in shutdowns:
            stop()

    return shutdown


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Trace through `provider` from now on (None: back to the no-op tracer)."""
    _tracing.provider = provider
    _tracing.sdk_path = None
    _tracing.on = provider is not None
    _tracing.tracer = (
        provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.NoOpTracer()
    )


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record metrics through `provider` from now on (None: the no-op meter)."""
    _metering.provider = provider
    _metering.on = provider is not None
    _metering.meter = (
        provider.get_meter(INSTRUMENTATION) if provider is not None
        else metrics.NoOpMeter(INSTRUMENTATION)
    )
    _metering.instruments = Instruments(_metering.meter) if provider is not None else None


def tracing() -> bool:
    """Whether spans are recorded: the hot paths' only cost when off."""
    return _tracing.on


def tracer() -> Tracer:
    return _tracing.tracer


def metering() -> bool:
    return _metering.on


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


def _parent(context: SpanContext | None) -> Context | None:
    return trace.set_span_in_context(NonRecordingSpan(context)) if context else None


@contextmanager
def child_span(
    name: str,
    traceparent: str | None,
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    link_current: bool = False,
) -> Iterator[Span]:
    """A span whose parent is the span `traceparent` names (the current span when it names
    none). `link_current` links the span that is current here when it is not the parent
    (e.g. a command's span inside a batch activity of another trace)."""
    remote = span_context(traceparent)
    links: list[Link] = []
    if link_current and remote is not None:
        here = trace.get_current_span().get_span_context()
        if here.is_valid and here.trace_id != remote.trace_id:
            links.append(Link(here))
    with _tracing.tracer.start_as_current_span(
        name, context=_parent(remote), kind=kind, attributes=dict(attributes or {}),
        links=links,
    ) as span:
        yield span


def start_span(
    name: str, traceparent: str | None, attributes: Mapping[str, Any] | None = None
) -> Span:
    """A span the caller ends, child of `traceparent` (else of the current span), linked
    to the current span when that is in another trace."""
    remote = span_context(traceparent)
    links: list[Link] = []
    if remote is not None:
        here = trace.get_current_span().get_span_context()
        if here.is_valid and here.trace_id != remote.trace_id:
            links.append(Link(here))
    return _tracing.tracer.start_span(
        name, context=_parent(remote), attributes=dict(attributes or {}), links=links
    )


@contextmanager
def span_over(
    name: str,
    traceparents: Iterable[str | None],
    attributes: Mapping[str, Any] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    start_time: int | None = None,
) -> Iterator[Span]:
    """A span over work of many traces: parented by the current span when there is one,
    else by the first traceparent; links to (at most MAX_LINKS) other traces' spans."""
    here = trace.get_current_span().get_span_context()
    parent: SpanContext | None = here if here.is_valid else None
    links: list[Link] = []
    seen: set[int] = set()
    for traceparent in traceparents:
        remote = span_context(traceparent)
        if remote is None:
            continue
        if parent is None:
            parent = remote
            seen.add(remote.trace_id)
            continue
        if remote.trace_id in seen or remote.trace_id == parent.trace_id:
            continue
        seen.add(remote.trace_id)
        if len(links) < MAX_LINKS:
            links.append(Link(remote))
    with _tracing.tracer.start_as_current_span(
        name,
        context=_parent(parent) if parent is not None and not here.is_valid else None,
        kind=kind,
        attributes=dict(attributes or {}),
        links=links,
        start_time=start_time,
    ) as span:
        yield span


# -- many spans of one batch --------------------------------------------------------------

K = TypeVar("K", bound=Hashable)


class SpanGroup(Generic[K]):
    """One span per unit of work of a batch (a command), each started when its work starts,
    all ended together when the batch is done.

    Why not tracer.start_span per unit: a backlog drains at ~1,200 commands/s through one
    Python process, and the SDK's span (start with attributes and links, its bounded
    containers and lock, end, the ReadableSpan copy handed to the processors, the export
    thread) costs it ~35-60 us per command; made as below, ~15-25 us. On the SDK's own
    tracer whose span processors are only the SDK's Batch/SimpleSpanProcessor (their
    on_start does nothing: they see finished spans only), the group does what the tracer
    would, in fewer steps: the span id from the provider's id generator, the provider's
    sampler asked the same question, the same trace flags; and at the end it hands each
    recorded span to the processors as the ReadableSpan the SDK would have made. Any other
    tracer or processor, a disabled tracer, or the SDK's own metrics on: the tracer's
    ordinary path, span by span. The spans are the same either way
    (tests/unit/test_telemetry_group.py compares them).

    A unit's parent is the span its traceparent names, else the span current when the
    group was made (the batch's); when those are in different traces, the unit's span
    links the batch's.
    """

    def __init__(self) -> None:
        self._context = context_api.get_current()
        here = trace.get_current_span(self._context).get_span_context()
        self._here = here if here.is_valid else None
        self._sdk = _sdk_path(_tracing.tracer)
        self._link = (
            self._sdk.link(here) if self._sdk is not None and self._here is not None else None
        )
        self._spans: dict[K, Span] = {}
        self._started: dict[K, _Started] = {}

    def __len__(self) -> int:
        return len(self._spans) + len(self._started)

    def start(self, key: K, name: str, traceparent: str | None,
              attributes: dict[str, str]) -> str | None:
        """Start `key`'s span (the group keeps `attributes`); its traceparent, for what
        the unit writes (also for a span that is not sampled: the context flows on)."""
        remote = span_context(traceparent)
        sdk = self._sdk
        if sdk is None:
            span = start_span(name, traceparent, attributes)
            self._spans[key] = span
            return traceparent_of(span.get_span_context())
        here = self._here
        if remote is not None:
            parent: SpanContext | None = remote
            context = trace.set_span_in_context(NonRecordingSpan(remote))
            links: tuple[Link, ...] = (
                (self._link,) if self._link is not None and here is not None
                and here.trace_id != remote.trace_id else ()
            )
        else:
            parent, context, links = here, self._context, ()
        if parent is None:
            trace_id = sdk.ids.generate_trace_id()
            random = sdk.ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random = parent.trace_flags.random_trace_id
        decided = sdk.sampler.should_sample(
            context, trace_id, name, SpanKind.INTERNAL, attributes, links
        )
        flags = TraceFlags.SAMPLED if decided.decision is sdk.sample else TraceFlags.DEFAULT
        if random:
            flags |= TraceFlags.RANDOM_TRACE_ID
        own = SpanContext(trace_id, sdk.ids.generate_span_id(), is_remote=False,
                          trace_flags=TraceFlags(flags), trace_state=decided.trace_state)
        if decided.decision is not sdk.drop:
            # The span keeps what the sampler returns: ours (as a read-only view) unless it
            # changed them.
            ours = decided.attributes == attributes
            self._started[key] = _Started(
                name, own, parent, attributes if ours else dict(decided.attributes or {}),
                links, time.time_ns(), not ours,
            )
        return f"00-{trace_id:032x}-{own.span_id:016x}-{flags:02x}"

    def end(
        self,
        attributes: Mapping[K, Mapping[str, str]] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """End every span: with `attributes[key]` added to its own, or with `error`
        recorded (an exception event, status ERROR) and nothing added."""
        for key, span in self._spans.items():
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            elif attributes is not None and (more := attributes.get(key)):
                for name, value in more.items():
                    span.set_attribute(name, value)
            span.end()
        self._spans.clear()
        if self._sdk is not None and self._started:
            self._sdk.finish(self._started, attributes, error)
        self._started.clear()


@dataclass(slots=True)
class _Started:
    """A recorded span of a SpanGroup on the SDK path, not yet ended."""

    name: str
    context: SpanContext
    parent: SpanContext | None
    attributes: dict[str, str]
    links: tuple[Link, ...]
    start_time: int
    foreign: bool  # the sampler replaced the attributes: the SDK's limits apply


class _SdkPath:
    """What a SpanGroup needs of the SDK's tracer, kept while the tracer's processors stay."""

    @staticmethod
    def of(tracer: Tracer, processors: object) -> _SdkPath | None:
        """None unless the SDK path makes `tracer`'s spans exactly as it would."""
        from opentelemetry.sdk.trace import SpanLimits
        from opentelemetry.sdk.trace import Tracer as SdkTracer
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if type(tracer) is not SdkTracer or not isinstance(processors, tuple) or any(
            type(p) not in (BatchSpanProcessor, SimpleSpanProcessor) for p in processors
        ):
            return None
        limits = getattr(tracer, "_span_limits", None)  # private too: the SDK's limits
        # The SDK's own metrics (read when the tracer is made) count spans as they start.
        internal_metrics = os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "")
        if not isinstance(limits, SpanLimits) or internal_metrics.strip().lower() == "true":
            return None
        return _SdkPath(tracer, processors, limits)

    def __init__(
        self, tracer: SdkTracer, processors: tuple[SpanProcessor, ...], limits: SpanLimits
    ) -> None:
        from opentelemetry.attributes import BoundedAttributes
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.sampling import Decision
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._bounded = BoundedAttributes
        self._event = Event
        self._readable = ReadableSpan
        self.tracer = tracer
        self.processors = processors
        self.sampler = tracer.sampler
        self.sample, self.drop = Decision.RECORD_AND_SAMPLE, Decision.DROP
        self.ids = tracer.id_generator
        self._processor = tracer.span_processor
        self._info = tracer.instrumentation_info
        self._scope = InstrumentationScope(self._info.name, self._info.version,
                                           self._info.schema_url)
        self._limits = limits
        # Our attributes (a handful of short strings) fit unless limits were set that low.
        self._roomy = limits.max_span_attribute_length is None and (
            limits.max_span_attributes is None or limits.max_span_attributes >= 16
        )

    def link(self, context: SpanContext) -> Link:
        """The link to the batch's span, as the SDK keeps a link (shared by the group)."""
        limits = self._limits
        return Link(context, self._bounded(
            limits.max_link_attributes, None, immutable=True,
            max_value_len=limits.max_attribute_length,
        ))

    def finish(
        self,
        started: Mapping[K, _Started],
        attributes: Mapping[K, Mapping[str, str]] | None,
        error: BaseException | None,
    ) -> None:
        end_time = time.time_ns()
        events: tuple[SpanEvent, ...] = ()
        status = Status(StatusCode.UNSET)
        if error is not None:
            events = (self._exception(error),)
            status = Status(StatusCode.ERROR, type(error).__name__)
        limits = self._limits
        on_end = self._processor.on_end
        resource = self.tracer.resource
        for key, span in started.items():
            if error is None and attributes is not None and (more := attributes.get(key)):
                span.attributes.update(more)
            kept: Attributes = span.attributes
            if span.foreign or not self._roomy:
                kept = self._bounded(limits.max_span_attributes, kept, immutable=True,
                                     max_value_len=limits.max_span_attribute_length)
            on_end(self._readable(
                span.name, span.context, span.parent, resource, kept, events,
                span.links, SpanKind.INTERNAL, self._info, status, span.start_time,
                end_time, self._scope,
            ))

    def _exception(self, error: BaseException) -> SpanEvent:
        """The event Span.record_exception would add (escaped: False, as ours are)."""
        module = type(error).__module__
        qualname = type(error).__qualname__
        limits = self._limits
        return self._event("exception", self._bounded(
            limits.max_event_attributes,
            {"exception.type": qualname if module in (None, "", "builtins")
             else f"{module}.{qualname}",
             "exception.message": str(error),
             "exception.stacktrace": "".join(traceback.format_exception(error)),
             "exception.escaped": "False"},
            immutable=True, max_value_len=limits.max_attribute_length,
        ))


def _sdk_path(tracer: Tracer) -> _SdkPath | None:
    """The SDK path for a SpanGroup when `tracer` is the SDK's and enabled, with only span
    processors that ignore a span's start; else None (the tracer's ordinary path). Kept
    while the tracer and its processors stay (adding a processor makes a new tuple)."""
    # Private parts, read defensively: the processors behind the provider's multi-processor
    # and whether the tracer is enabled (its configurator may change that at any time).
    processors = getattr(getattr(tracer, "span_processor", None), "_span_processors", None)
    known = _tracing.sdk_path
    if known is None or known.tracer is not tracer or known.processors is not processors:
        known = _tracing.sdk_path = _SdkPath.of(tracer, processors)
    enabled = getattr(tracer, "_is_enabled", None)
    return known if known is not None and enabled is not None and enabled() else None


# -- metrics -----------------------------------------------------------------------------


class Instruments:
    """The metrics Intent records. Gauges read values that the long-running processes sample
    from the database now and then (`gauge_values`); callbacks never touch the database."""

    def __init__(self, meter: Meter):
        self.commands = meter.create_counter(
            "intent.commands", unit="{command}",
            description="Commands finished, by status (processed, rejected, failed)")
        self.command_latency = meter.create_histogram(
            "intent.command.latency", unit="s",
            description="From a command's submission to its batch's commit")
        self.batch_size = meter.create_histogram(
            "intent.batch.size", unit="{command}", description="Open commands per batch")
        self.append_duration = meter.create_histogram(
            "intent.append.duration", unit="s",
            description="One batch's append (events and snapshots), in its transaction")
        # The local gateway's Realtime: sockets open, frames delivered by kind, drops.
        self.realtime_connections = meter.create_up_down_counter(
            "intent.realtime.connections", unit="{connection}",
            description="Realtime websockets open on the gateway")
        self.realtime_deliveries = meter.create_counter(
            "intent.realtime.deliveries", unit="{message}",
            description="Realtime messages queued to subscribers, by kind (broadcast, "
            "postgres_changes)")
        self.realtime_drops = meter.create_counter(
            "intent.realtime.drops", unit="{connection}",
            description="Realtime sockets dropped as slow consumers")
        self.gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for name, unit, what in (
            ("intent.projection.lag.events", "{event}",
             "Events committed after a feed consumer's checkpoint"),
            ("intent.projection.lag.seconds", "s",
             "Age of the oldest event a feed consumer has not applied"),
            ("intent.feed.held_back.seconds", "s",
             "Age of the oldest open transaction that holds the feed back"),
            ("intent.sagas", "{workflow}", "Saga workflows by execution state"),
        ):
            self.gauges[name] = {}
            meter.create_observable_gauge(name, callbacks=[self._observe(name)], unit=unit,
                                          description=what)

    def _observe(self, name: str) -> Callable[[CallbackOptions], Sequence[Observation]]:
        def callback(_options: CallbackOptions) -> Sequence[Observation]:
            return [Observation(value, dict(key)) for key, value in
                    list(self.gauges[name].items())]

        return callback


def instruments() -> Instruments | None:
    """The instruments, or None when metrics are off (callers skip their work then)."""
    return _metering.instruments


def set_gauge(name: str, value: float, **attributes: str) -> None:
    """Remember a sampled value for an observable gauge (no-op when metrics are off)."""
    found = _metering.instruments
    if found is not None:
        found.gauges[name][tuple(sorted(attributes.items()))] = value
