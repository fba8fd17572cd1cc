"""Users as an app has them: signed up through the gateway's /auth/v1, in a tenant they
created with the tenancy slice's command (the access-token hook then puts it in their
tokens). Browsers for the web tests: Debian's chromium, which `./run` installs, and the
console's page signed in as such a user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect
from supabase import Client, ClientOptions, create_client

from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key

PASSWORD = "a long enough secret"
CHROMIUM = "/usr/bin/chromium"  # Playwright drives it: no browser download


@asynccontextmanager
async def headless_chromium() -> AsyncIterator[Browser]:
    """Debian's chromium, headless, driven by Playwright; closed when the block ends."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def client_of(gateway: RunningGateway, user: dict[str, str]) -> Client:
    """`user` signed in with supabase-py, as a second tab of theirs would be."""
    client = create_client(gateway.url, anon_key(), ClientOptions(
        auto_refresh_token=False, persist_session=False))
    client.auth.sign_in_with_password({"email": user["EMAIL"], "password": user["PASSWORD"]})
    return client


def send(client: Client, command_type: str, **payload: Any) -> dict[str, Any]:
    """A command through the `command` function with `wait`, which must be processed."""
    answer = client.functions.invoke("command", {"responseType": "json", "body": {
        "type": command_type, "payload": payload, "wait": True}})
    assert isinstance(answer, dict)
    assert answer["status"] == "processed", answer
    return answer


def member_with_a_tenant(gateway: RunningGateway, name: str = "member") -> dict[str, str]:
    """A user who signed up and created a tenant: URL, anon key, credentials and tenant."""
    email = f"{name}-{uuid4().hex[:10]}@example.com"
    client = create_client(gateway.url, anon_key(), ClientOptions(
        auto_refresh_token=False, persist_session=False))
    client.auth.sign_up({"email": email, "password": PASSWORD})
    tenant = str(uuid4())
    made = client.functions.invoke("command", {"responseType": "json", "body": {
        "type": "tenancy.create_tenant", "wait": True,
        "payload": {"tenant_id": tenant, "name": name}}})
    assert isinstance(made, dict)
    assert made["status"] == "processed", made
    return {"SUPABASE_URL": gateway.url, "SUPABASE_ANON_KEY": anon_key(), "EMAIL": email,
            "PASSWORD": PASSWORD, "TENANT": tenant}


async def signed_in_page(browser: Browser, gateway: RunningGateway, user: dict[str, str],
                         *, viewport: ViewportSize | None = None) -> Page:
    """The console (`/console`) in a new page, signed in as `user` (its form filled in)."""
    page = await browser.new_page(viewport=viewport)
    await page.goto(f"{gateway.url}/console")
    await expect(page.locator("#url")).to_have_value(gateway.url)  # from config.json
    await page.fill("#email", user["EMAIL"])
    await page.fill("#password", user["PASSWORD"])
    await page.click("#sign-in-button")
    return page
