"""The README's client recipes, run as written (blocks fenced with `recipe=`): each in a
process of its own, as a user would run the file, against the gateway and the real
pipeline, signed in as a user who created their tenant. Each must sign in, join its
tenant's private topic, send a command through the `command` function and see the event
arrive live."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any
from uuid import uuid4

import pytest
from supabase import ClientOptions, create_client

from tests.support.docs import REPO, Block, fenced_blocks
from tests.support.http import SUPABASE_PY_DEPRECATIONS
from tests.support.node import node
from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key

pytestmark = [pytest.mark.integration, SUPABASE_PY_DEPRECATIONS]

README = REPO / "README.md"
PASSWORD = "a long enough secret"


def recipes() -> dict[str, Block]:
    return {block.options["recipe"]: block for block in fenced_blocks(README)
            if "recipe" in block.options}


def test_the_readme_has_a_recipe_for_each_client() -> None:
    assert set(recipes()) == {"node", "python"}


def member_with_a_tenant(gateway: RunningGateway) -> dict[str, str]:
    """A user who signed up and created their tenant: what a recipe is run with."""
    email = f"recipe-{uuid4().hex[:10]}@example.com"
    client = create_client(gateway.url, anon_key(), ClientOptions(
        auto_refresh_token=False, persist_session=False))
    client.auth.sign_up({"email": email, "password": PASSWORD})
    made = client.functions.invoke("command", {"responseType": "json", "body": {
        "type": "tenancy.create_tenant", "wait": True,
        "payload": {"tenant_id": str(uuid4()), "name": "Recipes"}}})
    assert isinstance(made, dict)
    assert made["status"] == "processed", made
    return {"SUPABASE_URL": gateway.url, "SUPABASE_ANON_KEY": anon_key(), "EMAIL": email,
            "PASSWORD": PASSWORD}


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
