"""HTTP calls to the local gateway (or a function) from a test: the headers a signed-in
client sends, supabase-py clients as an app makes them, and requests whose status and JSON
body come back together."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from supabase import (
    AsyncClient,
    AsyncClientOptions,
    Client,
    ClientOptions,
    acreate_client,
    create_client,
)

from tools.gateway.testing import RunningGateway
from tools.local.keys import anon_key

# supabase-py 2.34 warns about its own use of these options (it passes them to its own
# PostgREST client); nothing of ours to act on. For the pytestmark of modules that use it.
SUPABASE_PY_DEPRECATIONS = pytest.mark.filterwarnings(
    r"ignore:The '(timeout|verify)' parameter is deprecated:DeprecationWarning"
)


def auth(token: str, apikey: str | None = None) -> dict[str, str]:
    """What supabase clients send: the project's key (anon unless given) and a bearer."""
    return {"apikey": apikey or anon_key(), "Authorization": f"Bearer {token}"}


async def client_for(gateway: RunningGateway, token: str | None = None) -> AsyncClient:
    """supabase-py as an app uses it: the anon key, plus a user's token when signed in."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await acreate_client(gateway.url, anon_key(), AsyncClientOptions(headers=headers))


def sync_client_for(gateway: RunningGateway, token: str | None = None) -> Client:
    """`client_for`, with supabase-py's synchronous client."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return create_client(gateway.url, anon_key(), ClientOptions(headers=headers))


async def call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """(status, the body as JSON — or as text when it is not JSON, None when empty, the
    headers)."""
    async with http.request(method, url, **kwargs) as response:
        text = await response.text()
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        return response.status, body, response.headers


async def post_json(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, Any]:
    """POST `body` as given; (status, the answer's JSON, None when empty)."""
    async with http.post(url, data=body, headers=headers) as answer:
        return answer.status, json.loads(await answer.text() or "null")
