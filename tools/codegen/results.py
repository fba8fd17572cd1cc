"""What a generator's check found, the same shape for every generated file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str  # what is current, or what is stale and how to regenerate it
