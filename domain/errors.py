"""Errors of the core, split by who is at fault.

A `DomainRejection` is an answer ("not enough stock"): recorded, never retried.
A `BadInput` is the caller's mistake (unknown type, payload that fails its model).
A `ConcurrencyError` is a lost race: reload and try again.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class IntentError(Exception):
    """Base of every error Intent raises on purpose. `code` is stable; messages may change."""

    code = "intent_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class DomainRejection(IntentError):  # noqa: N818 - the name is public API
    """The domain said no. `code` is chosen by the aggregate, e.g. 'insufficient_stock'."""

    def __init__(self, code: str, reason: str, **details: Any) -> None:
        super().__init__(reason, **details)
        self.code = code
        self.reason = reason


class BadInput(IntentError):  # noqa: N818 - the name is public API
    code = "bad_input"


class UnknownCommandType(BadInput):
    code = "unknown_command_type"


class InvalidCommand(BadInput):
    code = "invalid_command"


class UnknownEventType(BadInput):
    code = "unknown_event_type"


class InvalidEvent(BadInput):
    code = "invalid_event"


class InvalidSnapshot(BadInput):
    code = "invalid_snapshot"


class UnknownAggregateType(BadInput):
    code = "unknown_aggregate_type"


class Forbidden(IntentError):  # noqa: N818 - the name is public API
    """The caller's role may not send this command: not a bad request, a refused one."""

    code = "forbidden"


class RegistryError(IntentError):
    """The registry was declared wrongly (a programming error, found at import time)."""

    code = "registry_error"


class ConcurrencyError(IntentError):
    """Another writer appended to the stream first."""

    code = "concurrency_conflict"

    def __init__(self, stream: str, expected: int, actual: int | None) -> None:
        super().__init__(
            f"stream {stream}: expected version {expected}, "
            f"but it is at {'an unknown version' if actual is None else actual}",
            stream=stream,
            expected=expected,
            actual=actual,
        )
        self.expected = expected
        self.actual = actual


def validation_problems(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic's errors as JSON-safe `{field, message, type}` rows, for messages and details."""
    return [
        {
            "field": ".".join(str(part) for part in item["loc"]) or "(payload)",
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False)
    ]


def summarise(problems: list[dict[str, str]]) -> str:
    return "; ".join(f"{row['field']}: {row['message']}" for row in problems)
