"""What a signed-in user may ask of a tenant. Every command names the tenant it is for
(`tenant_id`, also the tenant's stream) and carries its sender as `actor`, which the
platform fills from the verified token (domain.senders): the client never sends it."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["owner", "admin", "member"]
Invitable = Literal["admin", "member"]  # an owner is made with change_role, not invited


class TenantCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: UUID
    actor: UUID | None = None


class CreateTenant(TenantCommand):
    name: str = Field(min_length=1, max_length=200)


class InviteMember(TenantCommand):
    invitation_id: UUID  # the invitee's key: shared with them, presented to accept
    role: Invitable = "member"


class AcceptInvitation(TenantCommand):
    invitation_id: UUID


class ChangeRole(TenantCommand):
    user_id: UUID
    role: Role


class RemoveMember(TenantCommand):
    user_id: UUID


class LeaveTenant(TenantCommand):
    pass


class SwitchTenant(TenantCommand):
    pass
