"""What has happened to a tenant's membership. `member_joined` and `tenant_switched` move
the member's `active_at`, which picks the tenant their next access token carries."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from domain.tenancy.commands import Invitable, Role


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant_id: UUID


class TenantCreated(_Event):
    name: str = Field(max_length=200)
    owner: UUID


class MemberInvited(_Event):
    invitation_id: UUID
    role: Invitable
    by: UUID


class MemberJoined(_Event):
    user_id: UUID
    role: Role
    invitation_id: UUID | None = None  # None: the tenant's creator


class RoleChanged(_Event):
    user_id: UUID
    role: Role
    by: UUID


class MemberRemoved(_Event):
    user_id: UUID
    by: UUID


class MemberLeft(_Event):
    user_id: UUID


class TenantSwitched(_Event):
    user_id: UUID
