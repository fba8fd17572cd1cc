"""`intent console`: the console served on its own, as an operator runs it for a hosted
project. Here the "project" is the local gateway on another origin: the page signs in to
it by default (config.json names it), sends a command there, sees the event arrive live
from it, and folds the item in the inspector with this checkout's application, served by
`intent console` itself. Bad options exit 2."""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from uuid import uuid4

import pytest
from playwright.async_api import expect

from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.processes import INTENT, ambient_env, run_intent, stop
from tests.support.signed_in import headless_chromium, member_with_a_tenant
from tools.gateway.testing import RunningGateway
from tools.local.cluster import free_port
from tools.local.keys import anon_key

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]


@pytest.fixture
def standalone(gateway: RunningGateway) -> Iterator[str]:
    """`intent console` on a free port, pointed at the gateway; its URL. Stopped by its PID."""
    port = free_port()
    proc = subprocess.Popen(
        [*INTENT, "console", "--project-url", gateway.url, "--anon-key", anon_key(),
         "--port", str(port)],
        env=ambient_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/console/"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "intent console did not start in 30 s"
                time.sleep(0.1)
        yield url
    finally:
        stop(proc)


async def test_the_console_on_its_own_signs_in_to_the_project_it_names(
    gateway: RunningGateway, pipeline: None, standalone: str,
) -> None:
    user = await asyncio.to_thread(member_with_a_tenant, gateway, "remote")
    item = str(uuid4())
    async with headless_chromium() as browser:
        page = await browser.new_page()
        await page.goto(standalone)
        await expect(page.locator("#url")).to_have_value(gateway.url)
        await page.fill("#email", user["EMAIL"])
        await page.fill("#password", user["PASSWORD"])
        await page.click("#sign-in-button")
        await expect(page.get_by_test_id("live-state")).to_have_text("subscribed")
        await page.click("#tabs button[data-view=composer]")
        await page.select_option("#command-type", "inventory.register_item")
        await page.fill("#command-fields input[name=item_id]", item)
        await page.fill("#command-fields input[name=sku]", "REMOTE-1")
        await page.fill("#command-fields input[name=name]", "Far away")
        await page.click("#send")
        await expect(page.get_by_test_id("outcome")).to_have_text(
            "processed: inventory.item_registered", timeout=30_000)
        await page.click("#tabs button[data-view=events]")
        row = page.locator("#event-rows tr[data-type='inventory.item_registered']")
        await expect(row).to_have_count(1, timeout=10_000)
        await row.locator("td.inspect").click()  # the fold is this server's
        state = page.get_by_test_id("inspector-state")
        await expect(state).to_contain_text("REMOTE-1", timeout=10_000)


def test_the_console_wants_both_the_url_and_the_key() -> None:
    done = run_intent("console", "--project-url", "https://example.supabase.co")
    assert done.returncode == 2, done.stderr
    assert "--anon-key" in done.stderr
