"""The edge function's hop, measured beside the RPC path: the same `receive_stock` request,
one at a time, through the local gateway either to `/rest/v1/rpc/submit_command` (as
`supabase.rpc(...)` sends it) or to `/functions/v1/command` (gateway → Deno → the same RPC
through the gateway). The figure is each request's time until its answer (202: stored,
pending); what the pipeline then does is the same for both and is measured elsewhere.

The requests are plain HTTP (aiohttp) with the headers the official clients send, so that
the client's own cost stays out of the comparison."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tools.bench.stats import median, percentile

if TYPE_CHECKING:
    import aiohttp

PATHS = ("rpc", "function")
WARM_UP = 10  # untimed requests per path before the rounds (Deno compiles the function)


@dataclass
class HopResults:
    requests_per_round: int
    latencies: dict[str, list[list[float]]] = field(
        default_factory=lambda: {p: [] for p in PATHS}
    )  # ms, per path, per round

    def pooled(self, path: str) -> list[float]:
        return [v for r in self.latencies[path] for v in r]

    def percentile(self, path: str, q: float) -> float:
        return percentile(self.pooled(path), q)

    def overhead(self, q: float) -> float:
        return self.percentile("function", q) - self.percentile("rpc", q)

    def as_json(self) -> dict[str, Any]:
        return {
            "what": "time from sending the request to its 202 answer, one request at a "
            "time, through the local gateway; rpc: /rest/v1/rpc/submit_command; function: "
            "/functions/v1/command (Deno, then the same RPC)",
            "requests_per_path_per_round": self.requests_per_round,
            **{
                path: {
                    "samples": len(self.pooled(path)),
                    "p50_ms": round(self.percentile(path, 50), 2),
                    "p99_ms": round(self.percentile(path, 99), 2),
                    "p50_per_round": [
                        round(median(r), 2) for r in self.latencies[path] if r
                    ],
                }
                for path in PATHS
            },
            "function_hop_overhead_ms": {
                "p50": round(self.overhead(50), 2),
                "p99": round(self.overhead(99), 2),
            },
        }


class _Requests:
    """`receive_stock` of one unit, sent by path, to the items in turn, as their users."""

    def __init__(
        self, http: aiohttp.ClientSession, gateway_url: str,
        items: Sequence[tuple[UUID, UUID, UUID]],
    ):
        from tools.local.keys import anon_key, user_token

        self.http = http
        self.gateway_url = gateway_url
        self.items = items
        self.anon_key = anon_key()
        self.tokens = {(t, u): user_token(t, u) for t, u, _ in items}

    def _request(self, path: str, n: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        """The url, body and headers of the n-th request on a path."""
        tenant, user, item = self.items[n % len(self.items)]
        headers = {
            "apikey": self.anon_key,
            "Authorization": f"Bearer {self.tokens[(tenant, user)]}",
            "Content-Type": "application/json",
        }
        payload = {"item_id": str(item), "quantity": 1}
        if path == "rpc":
            url = f"{self.gateway_url}/rest/v1/rpc/submit_command"
            return url, {"command_type": "inventory.receive_stock", "payload": payload}, headers
        url = f"{self.gateway_url}/functions/v1/command"
        return url, {"type": "inventory.receive_stock", "payload": payload}, headers

    async def send(self, path: str, n: int) -> float:
        """The n-th request on a path; ms until its answer."""
        url, body, headers = self._request(path, n)
        started = perf_counter()
        async with self.http.post(url, data=json.dumps(body), headers=headers) as answer:
            text = await answer.text()
            elapsed = (perf_counter() - started) * 1000
        if answer.status not in (200, 202):
            raise RuntimeError(f"{path} answered {answer.status}: {text[:300]}")
        return elapsed


async def measure_hop(
    database_url: str,
    items: Sequence[tuple[UUID, UUID, UUID]],  # tenant, user, item
    *,
    rounds: int,
    requests: int,
    advance: Callable[[str], None] | None = None,
) -> HopResults:
    """`requests` per path per round, the paths' order alternating by round, after an
    untimed warm-up of each (the first Deno request compiles the function)."""
    import aiohttp

    from tools.gateway.testing import running_gateway
    from tools.settings import REPO_ROOT

    results = HopResults(requests)
    with running_gateway(
        database_url,
        functions_dir=REPO_ROOT / "supabase" / "functions",
        functions_config=REPO_ROOT / "supabase" / "config.toml",
    ) as gateway:
        async with aiohttp.ClientSession() as http:
            sender = _Requests(http, gateway.url, items)
            for path in PATHS:
                for n in range(WARM_UP):
                    await sender.send(path, n)
            for r in range(rounds):
                order = PATHS if r % 2 == 0 else tuple(reversed(PATHS))
                for path in order:
                    results.latencies[path].append(
                        [await sender.send(path, r * requests + n) for n in range(requests)]
                    )
                if advance is not None:
                    advance(f"round {r + 1}: function hop")
    return results
