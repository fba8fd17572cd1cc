"""What the platform vouches for about a command's sender, never the client.

Two declarations a command type may make (`registry.command(..., actor=..., tenant=...)`):

- `actor`: a payload field the platform fills with the sender's verified user id (the JWT's
  `sub`, carried in the command's metadata). A client that sets it is refused: an aggregate
  that decides on who asks (a tenant's owner removing a member) must not be told by the
  asker who it is.
- `tenant`: a payload field naming the tenant the command is for, which the ingress files
  it under instead of the token's tenant (creating a tenant, joining one, switching to it:
  the token carries no tenant yet, or another one). The aggregate authorises the sender.
"""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Any, get_args
from uuid import UUID

from pydantic import BaseModel

from domain.contracts import Command, JsonObject
from domain.errors import InvalidCommand, RegistryError


def check_sender_fields(name: str, model: type[BaseModel], actor: str | None,
                        tenant: str | None) -> None:
    """The declared fields exist with the types the platform writes into them."""
    if actor is not None:
        field = model.model_fields.get(actor)
        if (field is None or not isinstance(field.annotation, UnionType)
                or set(get_args(field.annotation)) != {UUID, NoneType} or field.is_required()):
            raise RegistryError(f"command type {name}: the actor field {actor!r} must be "
                                f"`{actor}: UUID | None = None` (the platform fills it)")
    if tenant is not None:
        field = model.model_fields.get(tenant)
        if field is None or field.annotation is not UUID:
            raise RegistryError(f"command type {name}: the tenant field {tenant!r} must be a "
                                "required UUID field")


def _refused(name: str, field: str, message: str) -> InvalidCommand:
    return InvalidCommand(f"{name}: invalid payload: {field}: {message}", command_type=name,
                          errors=[{"field": field, "message": message, "type": "sender"}])


def bound_payload(name: str, actor: str | None, tenant: str | None,
                  command: Command) -> JsonObject:
    """The payload with the actor filled in, after checking what the client may not say."""
    payload: dict[str, Any] = dict(command.payload)
    if actor is not None:
        if payload.get(actor) is not None:
            raise _refused(name, actor, "is the sender's user id, set by the platform")
        user = command.metadata.user_id
        payload[actor] = str(user) if user is not None else None
    if tenant is not None and str(payload.get(tenant)) != str(command.metadata.tenant_id):
        raise _refused(name, tenant, "names another tenant than the one the command is for")
    return payload
