"""supabase-js 2.119, unchanged, under Node 20 against the local gateway and the real
pipeline: the same scenario as the supabase-py tests, run as a script."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.support.node import run_script
from tests.support.scenario import People
from tools.gateway.testing import RunningGateway
from tools.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SCRIPT = REPO_ROOT / "tests" / "e2e" / "js" / "scenario.mjs"


async def run_scenario(gateway: RunningGateway, people: People, item: str) -> dict[str, Any]:
    return await run_script(SCRIPT, {
        "url": gateway.url, "anonKey": people.anon, "tokenA": people.token_a,
        "tokenB": people.token_b, "forged": people.forged, "expired": people.expired,
        "item": item,
    })


async def test_supabase_js_commands_hydrates_reads_and_is_fenced_by_tenant(
    gateway: RunningGateway, pipeline: None
) -> None:
    people = People()
    seen = await run_scenario(gateway, people, str(uuid4()))
    assert seen["registered"] == {"status": "pending", "error": None}
    assert seen["registeredFinal"] == "processed"
    assert seen["waited"] == {
        "status": "processed", "events": ["inventory.stock_received"], "error": None,
    }
    assert seen["submitted"] == "processed"
    assert seen["hydrated"] == {"version": 3, "versions": [1, 2, 3]}
    assert seen["rows"] == [{"sku": "JS-1", "available": 7}]
    assert seen["foreignCommand"]["status"] == 403
    assert seen["foreignHydrate"] == {"version": 0, "events": 0}
    assert seen["foreignRows"] == []
    expected_codes = {"anon": "42501", "forged": "PGRST301", "expired": "PGRST303"}
    for who, refused in seen["refused"].items():
        assert refused["function"]["status"] == 401, (who, refused)
        assert refused["rpc"] == {"status": 401, "code": expected_codes[who]}, (who, refused)
        assert refused["table"]["status"] == 401, (who, refused)
