"""The console's Sagas view in headless Chromium, against the gateway, the pipeline and the
saga runtime (router and saga worker, as the runtime's own role): a user places an order,
and the tab shows the fulfilment saga's instance running with its payment deadline and a
countdown, then completed once the order is paid. A user of another tenant, signed in
beside them, sees no instance, in the page or through the RPC."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from playwright.async_api import expect
from supabase import Client

from domain.orders import OrderFulfilment
from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.sagas import E2E_PAYMENT_DEADLINE
from tests.support.signed_in import (
    client_of,
    headless_chromium,
    member_with_a_tenant,
    send,
    signed_in_page,
)
from tools.gateway.testing import RunningGateway

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]



def place_an_order(client: Client) -> str:
    """A stocked item and an order of it: the order starts the fulfilment saga."""
    item, order = str(uuid4()), str(uuid4())
    send(client, "inventory.register_item", item_id=item, sku="SAGA-1", name="Awaited")
    send(client, "inventory.receive_stock", item_id=item, quantity=5)
    send(client, "orders.place_order", order_id=order, item_id=item, quantity=2)
    return order


def instances(client: Client) -> list[dict[str, Any]]:
    rows = client.rpc("saga_instances").execute().data
    assert isinstance(rows, list)
    return rows


async def test_the_sagas_tab_shows_the_running_instance_and_its_next_timer(
    gateway: RunningGateway, saga_runtime: None,
) -> None:
    alice, bob = await asyncio.gather(
        asyncio.to_thread(member_with_a_tenant, gateway, "alice"),
        asyncio.to_thread(member_with_a_tenant, gateway, "bob"))
    async with headless_chromium() as browser:
        mine = await signed_in_page(browser, gateway, alice)
        theirs = await signed_in_page(browser, gateway, bob)
        for page in (mine, theirs):
            await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
            await page.click("#tabs button[data-view=sagas]")
            await expect(page.locator("#sagas-empty")).to_be_visible()

        client = await asyncio.to_thread(client_of, gateway, alice)
        placed = datetime.now(UTC)
        order = await asyncio.to_thread(place_an_order, client)
        row = mine.locator(f"#saga-rows tr[data-instance='{order}']")
        await expect(row).to_have_count(1, timeout=15_000)
        await expect(row).to_have_attribute("data-status", "running")
        await expect(row).to_contain_text(OrderFulfilment.name)
        await expect(row.locator("td.saga-timers [data-timer=payment_deadline]")
                     ).to_have_count(1)
        countdown = row.locator("td.next-timer .countdown")
        await expect(countdown).to_have_text(re.compile(r"^in (4|5) min \d+ s$"))
        shown = await row.locator("td.next-timer time").get_attribute("datetime")
        assert shown is not None
        due = datetime.fromisoformat(shown)
        expected = placed + timedelta(seconds=E2E_PAYMENT_DEADLINE)
        assert abs(due - expected) < timedelta(seconds=10)
        first = await countdown.text_content()
        await expect(countdown).not_to_have_text(first or "", timeout=3_000)  # it ticks

        (listed,) = await asyncio.to_thread(instances, client)
        assert (listed["instance"], listed["status"]) == (order, "running")
        assert datetime.fromisoformat(listed["next_timer_at"]) == due
        await expect(mine.locator("#sagas-empty")).to_be_hidden()
        # Tenant B: nothing of A's, in the page or through the RPC.
        await expect(theirs.locator("#saga-rows tr")).to_have_count(0)
        await expect(theirs.locator("#sagas-empty")).to_be_visible()
        other = await asyncio.to_thread(client_of, gateway, bob)
        assert await asyncio.to_thread(instances, other) == []

        await asyncio.to_thread(send, client, "orders.confirm_payment", order_id=order)
        await expect(row).to_have_attribute("data-status", "completed", timeout=15_000)
        await expect(row.locator("td.saga-state")).to_have_text("completed (paid)")
        await expect(row.locator("td.next-timer")).to_have_text("—")
