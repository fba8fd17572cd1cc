"""A tenant: its name, its members with their roles, and the invitations not yet accepted.

Who may do what is decided here, on the verified sender (`actor`): owners do everything,
admins invite members and remove non-owners, members leave and switch to the tenant. A
tenant always keeps an owner."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from domain.aggregate import Aggregate
from domain.errors import DomainRejection
from domain.tenancy.commands import (
    AcceptInvitation,
    ChangeRole,
    CreateTenant,
    Invitable,
    InviteMember,
    LeaveTenant,
    RemoveMember,
    Role,
    SwitchTenant,
    TenantCommand,
)
from domain.tenancy.events import (
    MemberInvited,
    MemberJoined,
    MemberLeft,
    MemberRemoved,
    RoleChanged,
    TenantCreated,
    TenantSwitched,
)

MANAGERS = ("owner", "admin")


class TenantState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    created: bool = False
    name: str | None = None
    members: dict[UUID, Role] = {}
    invitations: dict[UUID, Invitable] = {}  # invitation id -> the role it gives

    def owners(self) -> int:
        return sum(1 for role in self.members.values() if role == "owner")


def _no(code: str, reason: str) -> DomainRejection:
    return DomainRejection(code, reason)


class Tenant(Aggregate[TenantState]):
    type_name = "tenancy.tenant"
    state_model = TenantState
    snapshot_every = 100

    @classmethod
    def decide(cls, command: BaseModel, state: TenantState) -> Sequence[BaseModel]:
        if not isinstance(command, TenantCommand):
            cls.unhandled_command(command)
        actor, tenant = command.actor, command.tenant_id
        if actor is None:
            raise _no("no_user", "only a signed-in user may change a tenant's membership")
        if isinstance(command, CreateTenant):
            if state.created:
                raise _no("tenant_exists", "a tenant with this id exists")
            return [TenantCreated(tenant_id=tenant, name=command.name, owner=actor),
                    MemberJoined(tenant_id=tenant, user_id=actor, role="owner")]
        if not state.created:
            raise _no("tenant_not_found", "no tenant with this id")
        if isinstance(command, AcceptInvitation):
            return cls._accept(state, tenant, actor, command.invitation_id)
        role = state.members.get(actor)
        if role is None:
            raise _no("not_a_member", "you are not a member of this tenant")
        return cls._as_member(command, state, tenant, actor, role)

    @classmethod
    def _accept(cls, state: TenantState, tenant: UUID, actor: UUID,
                invitation: UUID) -> Sequence[BaseModel]:
        if actor in state.members:
            raise _no("already_member", "you are a member of this tenant already")
        role = state.invitations.get(invitation)
        if role is None:
            raise _no("unknown_invitation", "no open invitation with this id")
        return [MemberJoined(tenant_id=tenant, user_id=actor, role=role,
                             invitation_id=invitation)]

    @classmethod
    def _as_member(cls, command: BaseModel, state: TenantState, tenant: UUID, actor: UUID,
                   role: Role) -> Sequence[BaseModel]:
        match command:
            case SwitchTenant():
                return [TenantSwitched(tenant_id=tenant, user_id=actor)]
            case LeaveTenant():
                if role == "owner" and state.owners() == 1:
                    raise _no("last_owner", "the last owner cannot leave: make another owner")
                return [MemberLeft(tenant_id=tenant, user_id=actor)]
            case InviteMember(invitation_id=invitation, role=given):
                if role not in MANAGERS or (given == "admin" and role != "owner"):
                    raise _no("not_allowed", f"a tenant's {role} may not invite an {given}")
                if invitation in state.invitations:
                    return []  # the same invitation again
                return [MemberInvited(tenant_id=tenant, invitation_id=invitation, role=given,
                                      by=actor)]
            case ChangeRole() | RemoveMember():
                return cls._manage(command, state, tenant, actor, role)
            case _:
                cls.unhandled_command(command)

    @classmethod
    def _manage(cls, command: ChangeRole | RemoveMember, state: TenantState, tenant: UUID,
                actor: UUID, role: Role) -> Sequence[BaseModel]:
        target = state.members.get(command.user_id)
        if target is None:
            raise _no("unknown_member", "that user is not a member of this tenant")
        if role not in MANAGERS or (target == "owner" and role != "owner") or (
                isinstance(command, ChangeRole) and role != "owner"):
            raise _no("not_allowed", f"a tenant's {role} may not do that")
        last_owner = target == "owner" and state.owners() == 1
        if isinstance(command, RemoveMember):
            if command.user_id == actor:
                raise _no("use_leave", "to leave a tenant, leave it")
            return [MemberRemoved(tenant_id=tenant, user_id=command.user_id, by=actor)]
        if command.role == target:
            return []
        if last_owner:
            raise _no("last_owner", "the last owner cannot step down: make another owner")
        return [RoleChanged(tenant_id=tenant, user_id=command.user_id, role=command.role,
                            by=actor)]

    @classmethod
    def evolve(cls, state: TenantState, event: BaseModel) -> TenantState:
        members, invitations = dict(state.members), dict(state.invitations)
        match event:
            case TenantCreated(name=name):
                return state.model_copy(update={"created": True, "name": name})
            case MemberInvited(invitation_id=invitation, role=role):
                invitations[invitation] = role
            case MemberJoined(user_id=user, role=role, invitation_id=invitation):
                members[user] = role
                if invitation is not None:
                    del invitations[invitation]
            case RoleChanged(user_id=user, role=role):
                members[user] = role
            case MemberRemoved(user_id=user) | MemberLeft(user_id=user):
                members.pop(user, None)
            case TenantSwitched():
                return state
            case _:
                cls.unhandled_event(event)
        return state.model_copy(update={"members": members, "invitations": invitations})
