"""Bounded waits: poll a condition until it holds, and fail the test when it does not hold
in time (no test sleeps a fixed time and hopes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(predicate: Callable[[], Awaitable[Any]], seconds: float = 30,
                what: str = "condition") -> None:
    """Await `predicate()` every 50 ms until it is true."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def until_sync(check: Callable[[], Any], seconds: float = 20, what: str = "condition",
               *, every: float = 0.05) -> Any:
    """Call `check()` every `every` seconds until it returns something true; that value."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(every)
