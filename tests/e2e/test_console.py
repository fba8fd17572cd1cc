"""The Intent console (`/console`, tools/console/) in headless Chromium driven by Playwright,
against the gateway and the real pipeline: a user signs in through /auth/v1, sees their
tenants, and watches their tenant's events arrive live; a wrong password is said on the
page; a user of another tenant, signed in beside them, sees none of it. The composer builds
its form from the command catalogue, sends through the `command` function and shows the
outcome, or the field the function refused."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from playwright.async_api import expect

from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.signed_in import (
    client_of,
    headless_chromium,
    member_with_a_tenant,
    send,
    signed_in_page,
)
from tools.gateway.testing import RunningGateway
from tools.local.keys import user_token

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]


async def test_the_console_signs_in_and_shows_the_tenants_events_live(
    gateway: RunningGateway, pipeline: None,
) -> None:
    alice, bob = await asyncio.gather(
        asyncio.to_thread(member_with_a_tenant, gateway, "alice"),
        asyncio.to_thread(member_with_a_tenant, gateway, "bob"))
    async with headless_chromium() as browser:
        mine = await signed_in_page(browser, gateway, alice)
        theirs = await signed_in_page(browser, gateway, bob)
        for page, user in ((mine, alice), (theirs, bob)):
            await expect(page.get_by_test_id("who")).to_contain_text(user["TENANT"])
            await expect(page.get_by_test_id("memberships")).to_contain_text(
                f"{user['TENANT']} (owner)")
            await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")

        item = str(uuid4())
        answer = await asyncio.to_thread(
            send, client_of(gateway, alice), "inventory.register_item", item_id=item,
            sku="CONSOLE-1", name="Seen")
        assert answer["status"] == "processed"
        row = mine.locator("#event-rows tr[data-type='inventory.item_registered']")
        await expect(row).to_have_count(1, timeout=10_000)
        await expect(row).to_contain_text(item)
        await expect(theirs.locator("#event-rows tr")).to_have_count(0)

        wrong = await browser.new_page()
        await wrong.goto(f"{gateway.url}/console/")
        await wrong.fill("#email", alice["EMAIL"])
        await wrong.fill("#password", "not the password")
        await wrong.click("#sign-in-button")
        await expect(wrong.get_by_test_id("sign-in-error")).to_contain_text(
            "invalid_credentials")


async def test_the_composer_sends_a_command_and_says_which_field_is_wrong(
    gateway: RunningGateway, pipeline: None,
) -> None:
    carol = await asyncio.to_thread(member_with_a_tenant, gateway, "carol")
    async with headless_chromium() as browser:
        page = await signed_in_page(browser, gateway, carol)
        await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
        await page.click("#tabs button[data-view=composer]")
        await page.select_option("#command-type", "inventory.register_item")
        await page.fill("#command-fields input[name=sku]", "C-1")
        await page.fill("#command-fields input[name=name]", "Composed")
        await page.click("#send")
        await expect(page.get_by_test_id("outcome")).to_have_text(
            "processed: inventory.item_registered", timeout=30_000)
        await expect(page.get_by_test_id("outcome-events")).to_contain_text(
            "v1 inventory.item_registered")
        await expect(page.get_by_test_id("outcome-events")).to_contain_text('"sku":"C-1"')
        # Committed by now: its event is in the live table within a second.
        rows = page.locator("#event-rows tr[data-type='inventory.item_registered']")
        await expect(rows).to_have_count(1, timeout=1_000)

        await page.fill("#command-fields input[name=sku]", "S" * 65)  # max 64
        await page.click("#send")
        await expect(page.get_by_test_id("outcome")).to_have_text("refused: invalid_payload")
        await expect(page.locator(".field-error[data-field=sku]")).not_to_be_empty()
        await expect(page.locator(".field-error[data-field=name]")).to_be_empty()


async def test_a_pasted_token_signs_in_without_a_password(
    gateway: RunningGateway, pipeline: None,
) -> None:
    tenant = str(uuid4())
    async with headless_chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{gateway.url}/console/")
        await page.fill("#token", "not a token")
        await page.click("#sign-in-button")
        await expect(page.get_by_test_id("sign-in-error")).to_contain_text("malformed_token")
        await page.fill("#token", user_token(tenant, uuid4()))
        await page.click("#sign-in-button")
        await expect(page.get_by_test_id("who")).to_contain_text(f"tenant {tenant}")
        await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
