"""The metrics Intent records, through the OpenTelemetry API; off (the no-op meter, no
instruments) unless a meter provider is installed (`use_meter_provider`, which
`pump.observability.setup.configure_from_env` calls when OTEL_METRICS_EXPORTER asks).
Callers fetch `instruments()` and skip their work when it is None."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from pump.observability.tracing import INSTRUMENTATION


class Instruments:
    """The metrics Intent records. Gauges read values that the long-running processes sample
    from the database now and then (`set_gauge`); callbacks never touch the database."""

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
            ("intent.broadcast.lag.events", "{event}",
             "Events committed after the broadcast relay's checkpoint (no Realtime message "
             "yet)"),
            ("intent.broadcast.lag.seconds", "s",
             "Age of the oldest event the broadcast relay has not sent to Realtime"),
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


@dataclass
class _Metering:
    on: bool = False
    meter: Meter = field(default_factory=lambda: metrics.NoOpMeter(INSTRUMENTATION))
    provider: MeterProvider | None = None
    instruments: Instruments | None = None


_metering = _Metering()


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record metrics through `provider` from now on (None: the no-op meter)."""
    _metering.provider = provider
    _metering.on = provider is not None
    _metering.meter = (
        provider.get_meter(INSTRUMENTATION) if provider is not None
        else metrics.NoOpMeter(INSTRUMENTATION)
    )
    _metering.instruments = Instruments(_metering.meter) if provider is not None else None


def metering() -> bool:
    return _metering.on


def instruments() -> Instruments | None:
    """The instruments, or None when metrics are off (callers skip their work then)."""
    return _metering.instruments


def set_gauge(name: str, value: float, **attributes: str) -> None:
    """Remember a sampled value for an observable gauge (no-op when metrics are off)."""
    found = _metering.instruments
    if found is not None:
        found.gauges[name][tuple(sorted(attributes.items()))] = value
