"""The gateway's Realtime metrics (connections, deliveries, drops), read with an in-memory
metric reader from the Realtime module running in the test's own event loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pump.observability import telemetry
from tests.support.telemetry import metric_points
from tools.gateway.app import create_app
from tools.gateway.config import GatewayConfig
from tools.gateway.realtime.routes import RealtimeModule
from tools.local.keys import user_token

pytestmark = pytest.mark.integration


def total(reader: InMemoryMetricReader, name: str, **attributes: str) -> int:
    return sum(value for attrs, value in metric_points(reader).get(name, [])
               if all(attrs.get(k) == v for k, v in attributes.items()))


@pytest.fixture
async def metered() -> AsyncIterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry.use_meter_provider(MeterProvider(metric_readers=[reader]))
    try:
        yield reader
    finally:
        telemetry.use_meter_provider(None)


async def reply(ws: aiohttp.ClientWebSocketResponse, ref: str) -> dict[str, Any]:
    while True:
        frame = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        if frame["event"] == "phx_reply" and frame["ref"] == ref:
            return dict(frame["payload"])


async def test_connections_and_broadcast_deliveries_are_counted(
    database_url: str, metered: InMemoryMetricReader
) -> None:
    app = create_app(GatewayConfig(database_url=database_url, functions_dir=None),
                     modules=[RealtimeModule()])
    token = user_token(uuid4(), uuid4())
    topic = f"realtime:metrics-{uuid4().hex[:8]}"
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("/realtime/v1/websocket")) + f"?apikey={token}&vsn=1.0.0"
        first = await session.ws_connect(url)
        second = await session.ws_connect(url)
        assert total(metered, "intent.realtime.connections") == 2
        for n, ws in enumerate((first, second)):
            await ws.send_str(json.dumps({
                "topic": topic, "event": "phx_join", "ref": f"j{n}", "join_ref": f"j{n}",
                "payload": {"config": {"broadcast": {"self": True, "ack": True},
                                       "presence": {"key": "", "enabled": False},
                                       "postgres_changes": [], "private": False}}}))
            assert (await reply(ws, f"j{n}"))["status"] == "ok"
        await first.send_str(json.dumps({
            "topic": topic, "event": "broadcast", "ref": "b1", "join_ref": "j0",
            "payload": {"type": "broadcast", "event": "hello", "payload": {"n": 1}}}))
        assert (await reply(first, "b1"))["status"] == "ok"
        # self: true, so both sockets get it: two deliveries.
        assert total(metered, "intent.realtime.deliveries", kind="broadcast") == 2
        await first.close()
        await second.close()
        for _ in range(100):  # the server notices the closes on its own time
            if total(metered, "intent.realtime.connections") == 0:
                break
            await asyncio.sleep(0.05)
        assert total(metered, "intent.realtime.connections") == 0
        assert total(metered, "intent.realtime.drops") == 0
