"""The README's client recipes, run as written (blocks fenced with `recipe=`): Node and
Python each in a process of its own, as a user would run the file, the browser's in headless
Chromium driven by Playwright; against the gateway and the real pipeline, signed in as a
user who created their tenant. Each must sign in, join its tenant's private topic, send a
command through the `command` function and see the event arrive live."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from tests.support.docs import REPO, Block, fenced_blocks
from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.node import node
from tests.support.signed_in import headless_chromium, member_with_a_tenant
from tools.gateway.testing import RunningGateway
from tools.local.cluster import free_port

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

README = REPO / "README.md"


def recipes() -> dict[str, Block]:
    return {block.options["recipe"]: block for block in fenced_blocks(README)
            if "recipe" in block.options}


def test_the_readme_has_a_recipe_for_each_client() -> None:
    assert set(recipes()) == {"browser", "node", "python"}


async def run_recipe(block: Block, command: list[str], suffix: str,
                     env: dict[str, str]) -> dict[str, Any]:
    # Under .intent/ (ignored by git), so that `node` finds the project's node_modules.
    folder = REPO / ".intent"
    folder.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=suffix, dir=folder, delete=False) as file:
        file.write(block.code)
    try:
        process = await asyncio.create_subprocess_exec(
            *command, file.name, cwd=REPO, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    finally:
        os.unlink(file.name)
    assert process.returncode == 0, f"{block.where}: {err.decode()}{out.decode()}"
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_the_node_recipe_runs_as_written(gateway: RunningGateway, pipeline: None) -> None:
    env = await asyncio.to_thread(member_with_a_tenant, gateway)
    seen = await run_recipe(recipes()["node"], [node()], ".mjs", env)
    assert seen == {"http": 200, "status": "processed", "refused": None,
                    "live": "inventory.item_registered"}


async def test_the_python_recipe_runs_as_written(gateway: RunningGateway,
                                                 pipeline: None) -> None:
    env = await asyncio.to_thread(member_with_a_tenant, gateway)
    seen = await run_recipe(recipes()["python"], [sys.executable], ".py", env)
    assert seen == {"status": "processed", "refused": None,
                    "live": "inventory.item_registered"}


PAGE = """<!doctype html>
<title>recipe</title>
<script src="/supabase.js"></script>
<script type="module">
const {{ SUPABASE_URL, SUPABASE_ANON_KEY, EMAIL, PASSWORD }} = {settings};
try {{
{recipe}
}} catch (error) {{
  console.log(JSON.stringify({{ failed: String(error) }}));
}}
</script>
"""


@asynccontextmanager
async def served_page(html: str) -> AsyncIterator[str]:
    """The recipe's page and supabase-js's browser bundle (from node_modules, no CDN) on
    127.0.0.1, for the browser to load; another origin than the gateway, as an app's is."""
    bundle = REPO / "node_modules" / "@supabase" / "supabase-js" / "dist" / "umd" / "supabase.js"

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def script(_: web.Request) -> web.FileResponse:
        return web.FileResponse(bundle)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/supabase.js", script)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def test_the_browser_recipe_runs_as_written_in_chromium(
    gateway: RunningGateway, pipeline: None,
) -> None:
    env = await asyncio.to_thread(member_with_a_tenant, gateway)
    html = PAGE.format(settings=json.dumps(env), recipe=recipes()["browser"].code)
    async with served_page(html) as url, headless_chromium() as browser:
        page = await browser.new_page()
        async with page.expect_console_message(
                lambda message: message.text.startswith("{"), timeout=60_000) as said:
            await page.goto(url)
        seen = json.loads((await said.value).text)
    assert seen == {"status": "processed", "refused": None, "live": "inventory.item_registered"}
