"""The console's operations views (read models, traces, health) in headless Chromium against
the gateway and the real pipeline: a user's command shows as its projection's row with the
projection's lag, as a command → event tree under its correlation id, and in their tenant's
command counts; a user of another tenant, signed in beside them, sees none of it in any of
these tabs; an operator (granted with `intent operator grant`) sees the system, the Realtime
relay's lag included. The RPCs refuse a bad uuid with 400 and anon with 401 through the
gateway's PostgREST."""

from __future__ import annotations

import asyncio
import re
from uuid import uuid4

import aiohttp
import psycopg
import pytest
from playwright.async_api import Page, expect

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
from tools.local.keys import anon_key, user_token

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

ORDERS = "projection:order_summaries@1"


def tenant_figures(database_url: str, tenant: str) -> tuple[int, int]:
    """The tenant's processed commands, and its events after order_summaries' checkpoint."""
    with psycopg.connect(database_url) as conn:
        processed = conn.execute("select count(*) from intent.commands where tenant_id = %s"
                                 " and status = 'processed'", (tenant,)).fetchone()
        behind = conn.execute(
            "select count(*) from intent.events e where e.tenant_id = %s"
            " and (e.transaction_id, e.position) > (coalesce((select transaction_id from"
            " intent.checkpoints where consumer = %s), '0'::xid8), coalesce((select position"
            " from intent.checkpoints where consumer = %s), 0))", (tenant, ORDERS, ORDERS),
        ).fetchone()
    assert processed is not None
    assert behind is not None
    return int(processed[0]), int(behind[0])


async def open_tab(page: Page, view: str) -> None:
    await page.click(f"#tabs button[data-view={view}]")


async def test_a_tenants_operations_views_and_another_tenants_and_an_operators(
    gateway: RunningGateway, pipeline: None, database_url: str,
) -> None:
    alice, bob, olga = await asyncio.gather(*(
        asyncio.to_thread(member_with_a_tenant, gateway, name)
        for name in ("alice", "bob", "olga")))
    granted = await asyncio.to_thread(run_intent, "operator", "grant", olga["EMAIL"],
                                      "--database-url", database_url)
    assert granted.returncode == 0, granted.stderr
    item = str(uuid4())
    answer = await asyncio.to_thread(
        send, client_of(gateway, alice), "inventory.register_item", item_id=item, sku="OPS-1",
        name="Operated")
    correlation = answer["correlationId"]
    secrets = (item, correlation, alice["TENANT"])
    async with headless_chromium() as browser:
        mine = await signed_in_page(browser, gateway, alice)
        theirs = await signed_in_page(browser, gateway, bob)
        for page, user in ((mine, alice), (theirs, bob)):
            await expect(page.get_by_test_id("who")).to_contain_text(user["TENANT"])
            await check_read_models(page, database_url, user["TENANT"])
            await check_health(page, database_url, user["TENANT"])
        await expect(mine.locator("article[data-projection=stock_levels]")).to_contain_text(
            item)
        await trace_in(mine, correlation)
        tree = mine.locator(".trace-tree > li.trace-command")
        await expect(tree).to_have_count(1)
        await expect(tree).to_contain_text("command inventory.register_item")
        await expect(tree.locator("li.trace-event")).to_contain_text(
            f"event inventory.item_registered inventory.item/{item} v1")

        for view in ("read-models", "health", "traces"):  # before typing A's id in B
            await open_tab(theirs, view)
            await asyncio.sleep(2.5)  # a refresh or two
            text = await theirs.locator("body").inner_text()
            assert not [s for s in secrets if s in text], view
        await trace_in(theirs, correlation)
        await expect(theirs.get_by_test_id("trace-result")).to_contain_text(
            "nothing carries correlation id")
        await expect(theirs.locator(".trace-node")).to_have_count(0)

        boss = await signed_in_page(browser, gateway, olga)
        await open_tab(boss, "health")
        await expect(boss.get_by_test_id("health-scope")).to_contain_text("the whole system")
        await expect(boss.get_by_test_id("health-relay")).to_contain_text(
            "event(s) without their broadcast, lag")
        await expect(boss.locator("tr[data-consumer='intent.realtime_relay']")).to_have_count(1)
        await expect(boss.locator(f"tr[data-consumer='{ORDERS}']")).to_have_count(1)
        await trace_in(boss, correlation)  # an operator traces every tenant
        await expect(boss.get_by_test_id("trace-result")).to_contain_text(
            f"tenant {alice['TENANT']}")


async def check_read_models(page: Page, database_url: str, tenant: str) -> None:
    """The async projection's lag is the tenant's own events past its checkpoint."""
    await open_tab(page, "read-models")
    _, behind = await asyncio.to_thread(tenant_figures, database_url, tenant)
    await expect(page.get_by_test_id("read-model-state-order_summaries")).to_contain_text(
        re.compile(rf"checkpoint \S+.* · lag {behind} event\(s\), [\d.]+ s · ok"),
        timeout=10_000)
    await expect(page.get_by_test_id("read-model-state-stock_levels")).to_contain_text(
        "inline")


async def check_health(page: Page, database_url: str, tenant: str) -> None:
    await open_tab(page, "health")
    processed, _ = await asyncio.to_thread(tenant_figures, database_url, tenant)
    await expect(page.get_by_test_id("health-scope")).to_contain_text(f"your tenant {tenant}")
    await expect(page.get_by_test_id("health-commands")).to_contain_text(
        re.compile(rf"processed {processed}\b"))
    await expect(page.locator(".health-note")).to_contain_text("is for operators")


async def trace_in(page: Page, correlation: str) -> None:
    await open_tab(page, "traces")
    await page.fill("#trace-correlation", correlation)
    await page.click("#trace-form button[type=submit]")


async def test_the_rpcs_refuse_bad_input_and_anon_through_the_gateway(
    gateway: RunningGateway,
) -> None:
    user = {"apikey": anon_key(), "Authorization": f"Bearer {user_token(uuid4(), uuid4())}"}
    anon = {"apikey": anon_key(), "Authorization": f"Bearer {anon_key()}"}
    rpc = f"{gateway.url}/rest/v1/rpc"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{rpc}/console_trace", json={"correlation_id": "nope"},
                             headers=user) as answer:
            assert answer.status == 400, await answer.text()
        async with http.post(f"{rpc}/console_read_models", json={"consumers": ["x"]},
                             headers=user) as answer:
            assert answer.status == 400
            assert (await answer.json())["hint"] == "malformed"
        for name in ("console_health", "console_read_models"):
            async with http.post(f"{rpc}/{name}", json={}, headers=anon) as answer:
                assert answer.status == 401, await answer.text()
            async with http.post(f"{rpc}/{name}", json={}, headers=user) as answer:
                assert answer.status == 200
                assert (await answer.json())["scope"] == "tenant"
        async with http.get(f"{gateway.url}/console/projections.json") as answer:
            catalog = await answer.json()
    modes = {p["name"]: p["mode"] for p in catalog["projections"]}
    assert modes["stock_levels"] == "inline"
    assert modes["order_summaries"] == "async"
