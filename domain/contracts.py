"""The envelopes that cross every boundary: commands in, events and snapshots out.

Envelopes carry payloads as plain JSON objects so that they can be stored, sent and
upcast without knowing the payload's Python type; the registry turns a payload into its
typed model when the domain needs it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

# A W3C trace context `traceparent` header: version-traceid-parentid-flags, lower-case hex.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# Type names are dotted lower-case words ("inventory.item", "inventory.stock_received"):
# they end up in SQL, JSON Schemas and topic names, so they are kept boring on purpose.
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
TYPE_NAME_MAX = 100

JsonObject = dict[str, Any]

METADATA_SCHEMA_VERSION = 1


def utc_now() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=4096)
def _is_type_name(value: str) -> bool:
    """Cached: a store holds few type names, and every event read checks two of them."""
    return len(value) <= TYPE_NAME_MAX and TYPE_NAME.fullmatch(value) is not None


def check_type_name(value: str) -> str:
    if not _is_type_name(value):
        raise ValueError(
            f"{value!r} is not a valid type name: use dotted lower-case words such as "
            f"'inventory.item' (at most {TYPE_NAME_MAX} characters)"
        )
    return value


TypeName = Annotated[str, AfterValidator(check_type_name)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Metadata(_Frozen):
    """Who asked, why, and where in a trace: copied from command to the events it causes."""

    tenant_id: UUID
    user_id: UUID | None = None
    role: str = "authenticated"
    correlation_id: UUID
    causation_id: UUID | None = None
    traceparent: str | None = None
    occurred_at: datetime = Field(default_factory=utc_now)
    schema_version: int = METADATA_SCHEMA_VERSION

    @field_validator("traceparent")
    @classmethod
    def _traceparent_is_w3c(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not _TRACEPARENT.fullmatch(value):
            raise ValueError(f"{value!r} is not a W3C traceparent")
        version, trace_id, parent_id, _flags = value.split("-")
        # The spec reserves version ff and forbids all-zero trace and parent ids.
        if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
            raise ValueError(f"{value!r} is not a W3C traceparent")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamps must carry a time zone")
        return value

    def caused_by(
        self, causation_id: UUID, *, at: datetime | None = None, traceparent: str | None = None
    ) -> Metadata:
        """Metadata for something this one causes: same tenant, user and correlation; the
        same trace context unless `traceparent` names the span doing the causing."""
        # Validated rather than model_copy'd, so a naive `at` is refused here too.
        fields = {**self.model_dump(), "causation_id": causation_id,
                  "occurred_at": at or utc_now()}
        if traceparent is not None:
            fields["traceparent"] = traceparent
        return Metadata.model_validate(fields)


class Command(_Frozen):
    """A request to change one aggregate. The payload is validated by the registry."""

    command_id: UUID
    command_type: TypeName
    payload: JsonObject
    metadata: Metadata


class StreamId(_Frozen):
    """One aggregate's stream. Tenancy is part of the identity, never implied."""

    tenant_id: UUID
    aggregate_type: TypeName
    aggregate_id: UUID

    def __str__(self) -> str:
        return f"{self.aggregate_type}/{self.aggregate_id} (tenant {self.tenant_id})"


class Event(_Frozen):
    """A fact, as stored. `position` and `transaction_id` exist once it is in the store."""

    event_id: UUID
    event_type: TypeName
    schema_version: int = Field(ge=1)
    stream: StreamId
    version: int = Field(ge=1)
    payload: JsonObject
    metadata: Metadata
    position: int | None = None
    transaction_id: int | None = None
    recorded_at: AwareDatetime | None = None

    # The typed payload `decide` made this event from, beside the dict it was dumped to: the
    # save path evolves the aggregate with it instead of validating the dict again. Not a
    # field, so it is never stored, sent or compared.
    _decided: tuple[JsonObject, BaseModel] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _tenant_matches(self) -> Self:
        if self.metadata.tenant_id != self.stream.tenant_id:
            raise ValueError("event metadata names another tenant than its stream")
        return self

    @classmethod
    def decided(
        cls,
        *,
        event_id: UUID,
        event_type: str,
        schema_version: int,
        stream: StreamId,
        version: int,
        typed: BaseModel,
        metadata: Metadata,
    ) -> Event:
        """A new event from what a decider returned, built without validating it again:
        the type is registered, the payload passed its model, and the caller (`decide`)
        took stream and metadata from one command, so their tenants agree."""
        if metadata.tenant_id != stream.tenant_id or version < 1 or schema_version < 1:
            raise ValueError("a decided event needs its command's tenant and versions >= 1")
        payload = typed.model_dump(mode="json")
        event = cls.model_construct(
            event_id=event_id, event_type=event_type, schema_version=schema_version,
            stream=stream, version=version, payload=payload, metadata=metadata,
            position=None, transaction_id=None, recorded_at=None,
        )
        event._decided = (payload, typed)
        return event

    def decided_payload(self) -> BaseModel | None:
        """The typed payload `decided` was given, while `payload` is still the dict made
        from it (a copy with another payload does not inherit it)."""
        # Read from pydantic's private dict directly: attribute access to a private name
        # goes through BaseModel.__getattr__, which costs more than the check it guards.
        private = self.__pydantic_private__
        decided = private.get("_decided") if private else None
        return decided[1] if decided is not None and decided[0] is self.payload else None

    def __eq__(self, other: object) -> bool:
        """Equal when every field is: a decided event equals itself read back."""
        if not isinstance(other, Event):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # the payload is a dict: never hashable


class Snapshot(_Frozen):
    """An aggregate's state after `version` events, with the state's own schema version."""

    stream: StreamId
    version: int = Field(ge=1)
    schema_version: int = Field(ge=1)
    state: JsonObject
    created_at: AwareDatetime | None = None
