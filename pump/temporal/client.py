"""The Temporal client every process connects with: pydantic payloads, and the tracing
interceptor when tracing is on."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from pump.observability import telemetry
from pump.temporal.settings import TemporalSettings


async def connect(settings: TemporalSettings) -> Client:
    """With tracing on, the client (and the workers built on it) carries Temporal's
    TracingInterceptor, so workflows and activities continue the caller's trace."""
    return await Client.connect(
        settings.address, namespace=settings.namespace, data_converter=pydantic_data_converter,
        interceptors=telemetry.temporal_interceptors(),
        api_key=settings.api_key, tls=settings.tls, rpc_metadata=settings.rpc_metadata,
    )


def traced(client: Client) -> Client:
    """The same connection with the tracing interceptor (when tracing is on), for callers
    that were handed a client (tests, the benchmark)."""
    interceptors = telemetry.temporal_interceptors()
    if not interceptors:
        return client
    config = client.config()
    config["interceptors"] = [*config["interceptors"], *interceptors]
    return Client(**config)
