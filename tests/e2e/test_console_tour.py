"""Every view of the console, for a tenant with data, for a tenant beside it and for an
operator, in headless Chromium against the whole stack (gateway, pipeline, sagas): each
view shows its tenant's data, and no view of tenant B's user, after a refresh or two,
holds any of A's ids anywhere in the page, even when B asks for them by id.

It also takes the screenshots in docs/console/: with INTENT_SCREENSHOTS=<folder> it saves
a PNG of each view there (else into the test's own temporary folder), so
`INTENT_SCREENSHOTS=docs/console .venv/bin/pytest tests/e2e/test_console_tour.py`
refreshes the pictures the docs show."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.processes import run_intent
from tests.support.signed_in import (
    client_of,
    headless_chromium,
    member_with_a_tenant,
    send,
    signed_in_page,
)
from tools.gateway.testing import RunningGateway

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

VIEWS = ("events", "composer", "inspector", "read-models", "sagas", "traces", "health")
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}


def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("INTENT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def a_tenant_at_work(gateway: RunningGateway, user: dict[str, str]) -> dict[str, Any]:
    """A few items and an order (whose saga then waits for payment): the ids the views show."""
    client = client_of(gateway, user)
    items = [str(uuid4()) for _ in range(3)]
    for n, item in enumerate(items, 1):
        send(client, "inventory.register_item", item_id=item, sku=f"LAMP-{n}",
             name=f"Desk lamp {n}")
        send(client, "inventory.receive_stock", item_id=item, quantity=10 * n)
    order = str(uuid4())
    placed = send(client, "orders.place_order", order_id=order, item_id=items[0], quantity=2)
    return {"items": items, "order": order, "correlation": placed["correlationId"]}


async def open_view(page: Page, view: str) -> None:
    await page.click(f"#tabs button[data-view={view}]")
    await expect(page.locator(f"section#{view}")).to_be_visible()


async def shoot(page: Page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a picture of something, not a blank page


async def tour_as_owner(page: Page, work: dict[str, Any], folder: Path) -> None:
    item = work["items"][0]
    await open_view(page, "events")
    await expect(page.locator("#event-rows tr")).to_have_count(8, timeout=15_000)
    await shoot(page, folder, "events")

    await open_view(page, "composer")
    await page.select_option("#command-type", "inventory.receive_stock")
    await page.fill("#command-fields input[name=item_id]", item)
    await page.fill("#command-fields input[name=quantity]", "5")
    await page.click("#send")
    await expect(page.get_by_test_id("outcome")).to_have_text(
        "processed: inventory.stock_received", timeout=30_000)
    await shoot(page, folder, "composer")

    await open_view(page, "events")
    await page.locator(f"#event-rows tr[data-type='inventory.item_registered'] td.inspect"
                       f":has-text('{item}')").click()
    await expect(page.get_by_test_id("inspector-state")).to_contain_text("LAMP-1")
    await page.get_by_test_id("inspector-prev").click()
    await expect(page.get_by_test_id("inspector-diff")).not_to_be_empty()
    await shoot(page, folder, "inspector")

    await open_view(page, "read-models")
    await expect(page.locator("article[data-projection=stock_levels]")).to_contain_text(item)
    await shoot(page, folder, "read-models")

    await open_view(page, "sagas")
    await expect(page.get_by_test_id("saga-rows")).to_contain_text(work["order"],
                                                                  timeout=15_000)
    await shoot(page, folder, "sagas")

    await open_view(page, "traces")
    await page.fill("#trace-correlation", work["correlation"])
    await page.click("#trace-form button[type=submit]")
    await expect(page.locator(".trace-tree")).to_contain_text("command orders.place_order")
    await shoot(page, folder, "traces")

    await open_view(page, "health")
    await expect(page.get_by_test_id("health-commands")).to_contain_text("processed")
    await expect(page.get_by_test_id("health-sagas")).to_contain_text("orders.fulfilment 1")
    await shoot(page, folder, "health")


async def nothing_of(page: Page, secrets: list[str], where: str) -> None:
    text = await page.locator("body").inner_text()
    html = await page.content()
    leaked = [s for s in secrets if s in text or s in html]
    assert not leaked, f"{where}: {leaked}"


async def tour_as_other_tenant(page: Page, work: dict[str, Any], secrets: list[str]) -> None:
    """Every view, then asking for A's aggregate and A's trace by id: nothing comes back."""
    for view in VIEWS:
        await open_view(page, view)
        await asyncio.sleep(2.5)  # the views that refresh have refreshed
        await nothing_of(page, secrets, view)
    await open_view(page, "inspector")
    await page.select_option("#inspector-type", "inventory.item")
    await page.fill("#inspector-id", work["items"][0])
    await page.get_by_test_id("inspector-load").click()
    await expect(page.get_by_test_id("inspector-status")).to_contain_text("no events")
    await open_view(page, "traces")
    await page.fill("#trace-correlation", work["correlation"])
    await page.click("#trace-form button[type=submit]")
    await expect(page.get_by_test_id("trace-result")).to_contain_text(
        "nothing carries correlation id")
    # What B typed is on B's page; nothing else of A's came with it.
    asked = {work["items"][0], work["correlation"]}
    await nothing_of(page, [s for s in secrets if s not in asked], "after asking by id")


async def an_operators_health(browser: Browser, gateway: RunningGateway, database_url: str,
                              folder: Path) -> None:
    olga = await asyncio.to_thread(member_with_a_tenant, gateway, "olga")
    granted = await asyncio.to_thread(run_intent, "operator", "grant", olga["EMAIL"],
                                      "--database-url", database_url)
    assert granted.returncode == 0, granted.stderr
    page = await signed_in_page(browser, gateway, olga, viewport=VIEWPORT)
    await open_view(page, "health")
    await expect(page.get_by_test_id("health-scope")).to_contain_text("the whole system")
    await expect(page.get_by_test_id("health-relay")).to_contain_text("lag")
    await expect(page.get_by_test_id("health-sagas")).to_contain_text("orders.fulfilment")
    await shoot(page, folder, "health-operator")


async def test_every_view_shows_its_tenants_data_and_none_of_another_tenants(
    gateway: RunningGateway, pipeline: None, saga_runtime: None, database_url: str,
    tmp_path: Path,
) -> None:
    folder = screenshots(tmp_path)
    alice, bob = await asyncio.gather(
        asyncio.to_thread(member_with_a_tenant, gateway, "alice"),
        asyncio.to_thread(member_with_a_tenant, gateway, "bob"))
    async with headless_chromium() as browser:
        mine = await signed_in_page(browser, gateway, alice, viewport=VIEWPORT)
        theirs = await signed_in_page(browser, gateway, bob, viewport=VIEWPORT)
        for page in (mine, theirs):
            await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
        work = await asyncio.to_thread(a_tenant_at_work, gateway, alice)
        secrets = [alice["TENANT"], alice["EMAIL"], work["order"], work["correlation"],
                   *work["items"]]
        await tour_as_owner(mine, work, folder)
        await tour_as_other_tenant(theirs, work, secrets)
        await an_operators_health(browser, gateway, database_url, folder)
