"""Live aggregates (tools/client) over the gateway's Realtime, with supabase-py's AsyncClient
and supabase-js on Node, against the real pipeline: a client hydrates an item, another user
of the same tenant sends commands through the `command` function, and the client's state
follows version by version; the same through Postgres Changes; a user of another tenant is
refused the private topic and gets no changes; a dropped socket makes the client hydrate
again and end at the right version."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from realtime.types import RealtimePostgresChangesListenEvent
from supabase import AsyncClient

from tests.support.http import SUPABASE_PY_DEPRECATIONS, client_for
from tests.support.node import run_script
from tests.support.scenario import People
from tools.client import LiveAggregate, StreamEvent, SubscriptionError
from tools.client.hydration import channel_options
from tools.gateway.testing import RunningGateway
from tools.local.keys import user_token
from tools.settings import REPO_ROOT

pytestmark = [
    pytest.mark.integration,
    SUPABASE_PY_DEPRECATIONS,
    # realtime-py reads the close code of a dropped socket the deprecated way.
    pytest.mark.filterwarnings(r"ignore:ConnectionClosed\.(code|reason) is deprecated"),
]

ITEM = "inventory.item"
# How long a live state may take to reach a version: a deadline for the wait, not a measure
# (the gateway polls the WAL every 50-200 ms; this is a shared 2-core machine).
FOLLOW_SECONDS = 5.0
DRIVER = REPO_ROOT / "tests" / "e2e" / "js" / "realtime_hydration.mjs"


def versions(state: list[int], event: StreamEvent) -> list[int]:
    """The evolve function of these tests: the versions applied, in order."""
    return [*state, event.version]


def from_snapshot(snapshot: Mapping[str, Any]) -> list[int]:
    return list(range(1, int(snapshot["version"]) + 1))


async def command(c: AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """A command through the edge function, waiting for its outcome."""
    answer = await c.functions.invoke("command", {"body": {**body, "wait": True},
                                                  "responseType": "json"})
    assert isinstance(answer, dict)
    assert answer["status"] == "processed", answer
    return answer


async def register(c: AsyncClient, item: str) -> None:
    await command(c, {"type": "inventory.register_item",
                      "payload": {"item_id": item, "sku": f"RT-{item[:6]}", "name": "Live"}})


async def receive(c: AsyncClient, item: str, quantity: int = 1) -> None:
    await command(c, {"type": "inventory.receive_stock", "aggregateId": item,
                      "payload": {"quantity": quantity}})


@pytest.fixture(scope="module")
def people() -> People:
    return People()


@pytest.fixture
async def clients(gateway: RunningGateway, people: People
                  ) -> AsyncIterator[tuple[AsyncClient, AsyncClient, AsyncClient]]:
    """(user A, another user of tenant A who sends the commands, user B of tenant B)."""
    made = [await client_for(gateway, people.token_a),
            await client_for(gateway, user_token(people.tenant_a, uuid4())),
            await client_for(gateway, people.token_b)]
    yield made[0], made[1], made[2]
    for c in made:
        await c.realtime.close()


@pytest.mark.parametrize("source", ["broadcast", "postgres_changes"])
async def test_supabase_py_follows_an_aggregate_version_by_version(
    gateway: RunningGateway, pipeline: None, people: People,
    clients: tuple[AsyncClient, AsyncClient, AsyncClient], source: Any,
) -> None:
    a, colleague, _ = clients
    item = str(uuid4())
    await register(colleague, item)
    seen: list[int] = []
    live: LiveAggregate[list[int]] = LiveAggregate(
        a, ITEM, item, evolve=versions, initial=[], from_snapshot=from_snapshot,
        access_token=people.token_a, source=source,
        on_change=lambda aggregate: seen.append(aggregate.version))
    await live.start()
    try:
        assert live.version == 1
        for expected in (2, 3, 4):
            await receive(colleague, item, expected)
            await live.wait_for(expected, FOLLOW_SECONDS)
            assert live.version == expected
        assert live.state == [1, 2, 3, 4]
        assert seen == [1, 2, 3, 4]  # the hydration, then each version once, in order
        assert live.hydrations == 1  # no gap was seen
    finally:
        await live.stop()


async def test_another_tenant_is_refused_the_topic_and_gets_no_changes(
    gateway: RunningGateway, pipeline: None, people: People,
    clients: tuple[AsyncClient, AsyncClient, AsyncClient],
) -> None:
    a, colleague, b = clients
    item = str(uuid4())
    await register(colleague, item)

    intruder: LiveAggregate[list[int]] = LiveAggregate(
        b, ITEM, item, evolve=versions, initial=[], access_token=people.token_b,
        tenant_id=str(people.tenant_a))  # tenant A's topic, with B's token
    with pytest.raises(SubscriptionError, match="Unauthorized"):
        await intruder.start(join_seconds=FOLLOW_SECONDS)

    # Postgres Changes on A's aggregate, as B: joins (RLS filters rows, not subscriptions)
    # but nothing arrives, while A's own subscription sees the event.
    changes: list[Any] = []
    subscribed = asyncio.Event()
    await b.realtime.set_auth(people.token_b)
    spy = b.channel(f"spy:{item}", channel_options(private=False))
    spy.on_postgres_changes(RealtimePostgresChangesListenEvent.Insert, changes.append,
                            table="events", schema="intent", filter=f"aggregate_id=eq.{item}")
    spy.on_system(lambda payload: subscribed.set())
    await spy.subscribe()
    async with asyncio.timeout(FOLLOW_SECONDS):
        await subscribed.wait()
    watcher: LiveAggregate[list[int]] = LiveAggregate(
        a, ITEM, item, evolve=versions, initial=[], access_token=people.token_a,
        source="postgres_changes")
    await watcher.start()
    try:
        await receive(colleague, item)
        await watcher.wait_for(2, FOLLOW_SECONDS)
        await asyncio.sleep(0.3)  # B's push, were there one, goes out in the same batch
        assert watcher.state == [1, 2]
        assert changes == []
    finally:
        await watcher.stop()
        await b.remove_channel(spy)


async def test_a_dropped_socket_makes_the_client_hydrate_again(
    gateway: RunningGateway, pipeline: None, people: People,
    clients: tuple[AsyncClient, AsyncClient, AsyncClient],
) -> None:
    a, colleague, _ = clients
    item = str(uuid4())
    await register(colleague, item)
    live: LiveAggregate[list[int]] = LiveAggregate(
        a, ITEM, item, evolve=versions, initial=[], from_snapshot=from_snapshot,
        access_token=people.token_a)
    await live.start()
    try:
        await receive(colleague, item)
        await live.wait_for(2, FOLLOW_SECONDS)

        socket = a.realtime
        socket.auto_reconnect = False  # stay down while events are appended
        connection, listener = socket._ws_connection, socket._listen_task
        assert connection is not None
        assert listener is not None
        await connection.close(code=4000, reason="test drops the socket")
        async with asyncio.timeout(FOLLOW_SECONDS):
            await listener  # it sees the close, marks the channel errored and ends
        assert not socket.is_connected
        for quantity in (3, 4, 5):
            await receive(colleague, item, quantity)
        assert live.version == 2  # nothing arrived while the socket was down

        socket.auto_reconnect = True
        await socket.connect()  # rejoins the channel: SUBSCRIBED again -> hydrate
        await live.wait_for(5, FOLLOW_SECONDS)
        assert live.state == [1, 2, 3, 4, 5]
        assert live.hydrations == 2
        await receive(colleague, item, 6)  # and it follows live again
        await live.wait_for(6, FOLLOW_SECONDS)
        assert live.state == [1, 2, 3, 4, 5, 6]
    finally:
        await live.stop()


# -- supabase-js ----------------------------------------------------------------------------
async def run_driver(gateway: RunningGateway, people: People, compiled: Path,
                     **extra: Any) -> dict[str, Any]:
    return await run_script(DRIVER, {
        "url": gateway.url, "anonKey": people.anon, "tokenA": people.token_a,
        "tokenColleague": user_token(people.tenant_a, uuid4()),
        "tokenB": people.token_b, "tenantA": str(people.tenant_a),
        "library": str(compiled), "followMs": int(FOLLOW_SECONDS * 1000), **extra})


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/client/hydration.ts compiled with the project's own tsc (Node 20 cannot run
    TypeScript), as an ES module in a temp folder."""
    tsc = REPO_ROOT / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "typescript is missing: ./run setup installs package.json's packages"
    out = tmp_path_factory.mktemp("hydration-ts")
    proc = subprocess.run(
        [str(tsc), "--strict", "--target", "es2022", "--module", "es2022",
         "--moduleResolution", "bundler", "--skipLibCheck", "--outDir", str(out),
         str(REPO_ROOT / "tools" / "client" / "hydration.ts")],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out / "package.json").write_text('{"type": "module"}\n')
    return out / "hydration.js"


@pytest.mark.parametrize("source", ["broadcast", "postgres_changes"])
async def test_supabase_js_follows_an_aggregate_version_by_version(
    gateway: RunningGateway, pipeline: None, people: People, compiled: Path, source: str,
) -> None:
    seen = await run_driver(gateway, people, compiled, mode="follow", source=source,
                            item=str(uuid4()))
    assert seen["started"] == {"version": 1, "hydrations": 1}
    assert seen["followed"] == [2, 3, 4]
    assert seen["state"] == [1, 2, 3, 4]
    assert seen["changes"] == [1, 2, 3, 4]
    assert seen["hydrations"] == 1


async def test_supabase_js_another_tenant_is_refused_and_gets_no_changes(
    gateway: RunningGateway, pipeline: None, people: People, compiled: Path,
) -> None:
    seen = await run_driver(gateway, people, compiled, mode="foreign", item=str(uuid4()))
    assert "Unauthorized" in seen["joinError"]
    assert seen["watcher"] == [1, 2]
    assert seen["spyChanges"] == 0


async def test_supabase_js_a_dropped_socket_makes_the_client_hydrate_again(
    gateway: RunningGateway, pipeline: None, people: People, compiled: Path,
) -> None:
    seen = await run_driver(gateway, people, compiled, mode="gap", item=str(uuid4()))
    assert seen["whileDown"] == 2
    assert seen["state"] == [1, 2, 3, 4, 5, 6]
    assert seen["hydrations"] == 2

