"""The console's aggregate inspector in headless Chromium, against the gateway and the real
pipeline: an item changed through commands opens from its row in the live events table; the
state the page shows at version N equals the store's own fold of the stored events up to N
(domain.decider.rehydrate on the application's registry); the snapshot markers are the
versions aggregate_snapshots gives, and the newest snapshot equals the fold; it follows the
item live; a user of another tenant who loads the same id sees no events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from playwright.async_api import Page, expect
from psycopg_pool import AsyncConnectionPool
from supabase import Client

from domain.contracts import StreamId
from domain.decider import rehydrate, take_snapshot
from projections.shop import registry
from pump.store.connections import Conn, open_pool
from pump.store.events import PostgresEventStore
from pump.store.snapshots import PostgresSnapshotStore
from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.signed_in import (
    client_of,
    headless_chromium,
    member_with_a_tenant,
    send,
    signed_in_page,
)
from tools.gateway.testing import RunningGateway

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

ITEM = registry.aggregate_type("inventory.item")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    """The session database as its owner, for the Python side of the comparison."""
    opened = await open_pool(database_url, min_size=1, max_size=2, name="inspector")
    try:
        yield opened
    finally:
        await opened.close()


async def folded(pool: AsyncConnectionPool[Conn], stream: StreamId, version: int
                 ) -> dict[str, Any]:
    """The state after `version` events as the store folds them, dumped as JSON."""
    events = await PostgresEventStore(pool, registry).load(stream, to_version=version)
    assert len(events) == version
    state: dict[str, Any] = rehydrate(registry, ITEM, stream, None,
                                      events).state.model_dump(mode="json")
    return state


async def snapshot_at(pool: AsyncConnectionPool[Conn], stream: StreamId, version: int) -> None:
    """The snapshot the worker would take at `version` (every 50 events for an item: more
    than this test sends), saved as the worker saves it."""
    events = await PostgresEventStore(pool, registry).load(stream, to_version=version)
    loaded = rehydrate(registry, ITEM, stream, None, events)
    await PostgresSnapshotStore(pool).save(take_snapshot(ITEM, loaded))


async def shown_state(page: Page, version: int, head: int) -> dict[str, Any]:
    """The state the inspector shows once it is at `version` of `head`."""
    await expect(page.get_by_test_id("inspector-status")).to_contain_text(
        f"version {version} of {head}", timeout=15_000)
    state = page.get_by_test_id("inspector-state")
    await expect(state).to_have_attribute("data-version", str(version))
    shown: dict[str, Any] = json.loads(await state.text_content() or "null")
    return shown


async def changed_item(gateway: RunningGateway, user: dict[str, str]) -> tuple[Client, UUID]:
    """An item registered, stocked twice and partly reserved: versions 1 to 4."""
    client = await asyncio.to_thread(client_of, gateway, user)
    item = uuid4()
    for command_type, payload in (
        ("inventory.register_item", {"sku": "INSPECT-1", "name": "Inspected"}),
        ("inventory.receive_stock", {"quantity": 5}),
        ("inventory.receive_stock", {"quantity": 2}),
        ("inventory.reserve_stock", {"order_id": str(uuid4()), "quantity": 3}),
    ):
        await asyncio.to_thread(send, client, command_type, item_id=str(item), **payload)
    return client, item


async def test_the_inspector_shows_the_stores_fold_at_each_version_and_follows_live(
    gateway: RunningGateway, pipeline: None, pool: AsyncConnectionPool[Conn],
) -> None:
    alice, bob = await asyncio.gather(
        asyncio.to_thread(member_with_a_tenant, gateway, "alice"),
        asyncio.to_thread(member_with_a_tenant, gateway, "bob"))
    async with headless_chromium() as browser:
        page = await signed_in_page(browser, gateway, alice)
        await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
        client, item = await changed_item(gateway, alice)
        stream = StreamId(tenant_id=UUID(alice["TENANT"]), aggregate_type="inventory.item",
                          aggregate_id=item)
        await snapshot_at(pool, stream, 2)

        # Its row in the live events table opens it in the inspector, at the head.
        row = page.locator("#event-rows tr[data-type='inventory.item_registered']")
        await row.locator("td.inspect").click()
        await expect(page.locator("#inspector")).to_be_visible()
        assert await shown_state(page, 4, 4) == await folded(pool, stream, 4)
        await page.get_by_test_id("inspector-prev").click()
        await page.get_by_test_id("inspector-prev").click()
        assert await shown_state(page, 2, 4) == await folded(pool, stream, 2)
        await page.locator("[data-testid=inspector-versions] button[data-version='1']").click()
        assert await shown_state(page, 1, 4) == await folded(pool, stream, 1)
        diff = page.get_by_test_id("inspector-diff")
        await expect(diff).to_contain_text("/sku")
        await expect(page.get_by_test_id("inspector-payload")).to_contain_text("INSPECT-1")

        markers: Any = client.rpc("aggregate_snapshots", {
            "aggregate_type": "inventory.item", "aggregate_id": str(item)}).execute().data
        assert [m["version"] for m in markers] == [2]
        marked = page.locator("[data-testid=inspector-versions] li.snapshot button")
        await expect(marked).to_have_attribute("data-version", "2")
        await expect(page.get_by_test_id("inspector-snapshot-check")).to_contain_text(
            "equals the fold")

        await page.locator("[data-testid=inspector-versions] button[data-version='4']").click()
        await page.get_by_test_id("inspector-follow").check()
        await asyncio.to_thread(send, client, "inventory.receive_stock",
                                item_id=str(item), quantity=1)
        assert await shown_state(page, 5, 5) == await folded(pool, stream, 5)

        theirs = await signed_in_page(browser, gateway, bob)
        await expect(theirs.get_by_test_id("live-state")).to_have_text("subscribed")
        await theirs.click("#tabs button[data-view=inspector]")
        await theirs.select_option("#inspector-type", "inventory.item")
        await theirs.fill("#inspector-id", str(item))
        await theirs.get_by_test_id("inspector-load").click()
        await expect(theirs.get_by_test_id("inspector-status")).to_contain_text(
            "no events")
        await expect(theirs.get_by_test_id("inspector-state")).to_be_hidden()
