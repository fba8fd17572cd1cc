"""`intent bench realtime` from start to results: the local gateway and the broadcast relay
on the benchmark's database, then each fan-out in turn (the sides' order alternating)."""

from __future__ import annotations

import resource
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
from rich.progress import Progress

from pump.store.connections import open_pool
from tools.bench.database import server_facts
from tools.bench.realtime.phases import run_fanout
from tools.bench.realtime.plan import Plan
from tools.bench.realtime.relay import relay_process
from tools.bench.realtime.results import Phase, Results
from tools.bench.realtime.sockets import BenchRealtimeError


def _raise_open_files(wanted: int) -> None:
    """Each subscriber is a socket here and one in the gateway (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


async def run_realtime(url: str, plan: Plan, progress: Progress | None = None) -> Results:
    from tools.gateway.testing import GatewayStartError, running_gateway

    started = datetime.now(UTC)
    server = await server_facts(url)
    _raise_open_files(4 * max(plan.fanouts) + 256)
    tenant = uuid4()
    phases: list[Phase] = []
    pool = await open_pool(url, min_size=1, max_size=2, name="bench-realtime")
    try:
        with running_gateway(url) as gateway, relay_process(url):
            socket_url = gateway.url.replace("http://", "ws://") + "/realtime/v1/websocket"
            # No pool limit: each subscriber holds its connection for the whole phase.
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                for number, fanout in enumerate(plan.fanouts):
                    phases += await run_fanout(
                        session, socket_url, pool, tenant, fanout, plan, progress,
                        baseline_first=bool(number % 2),
                    )
    except GatewayStartError as exc:  # raised only while it starts
        raise BenchRealtimeError(f"the local gateway did not start: {exc}") from None
    finally:
        await pool.close()
    return Results(plan, phases, server, tenant, started, datetime.now(UTC))
