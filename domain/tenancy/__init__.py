"""The tenancy slice, part of the framework: tenants, their members with roles (owner,
admin, member), invitations, leaving, removal, and which tenant a user works in. An app
lists it in `slices=[...]`; the `memberships` read model (projections/tenancy.py) feeds the
access-token hook, which puts the active tenant and role into the user's token.

Every command names its tenant in the payload (`tenant=`: the token has no tenant yet when
its user creates or joins one) and is authorised by the aggregate on the verified sender
(`actor=`), never on what the client says."""

from __future__ import annotations

from pydantic import BaseModel

from domain.registry import Registry
from domain.tenancy.commands import (
    AcceptInvitation,
    ChangeRole,
    CreateTenant,
    InviteMember,
    LeaveTenant,
    RemoveMember,
    SwitchTenant,
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
from domain.tenancy.tenant import Tenant

registry = Registry()
registry.aggregate(Tenant)

registry.event("tenancy.tenant_created")(TenantCreated)
registry.event("tenancy.member_invited")(MemberInvited)
registry.event("tenancy.member_joined")(MemberJoined)
registry.event("tenancy.role_changed")(RoleChanged)
registry.event("tenancy.member_removed")(MemberRemoved)
registry.event("tenancy.member_left")(MemberLeft)
registry.event("tenancy.tenant_switched")(TenantSwitched)

COMMANDS: dict[str, type[BaseModel]] = {
    "tenancy.create_tenant": CreateTenant,
    "tenancy.invite_member": InviteMember,
    "tenancy.accept_invitation": AcceptInvitation,
    "tenancy.change_role": ChangeRole,
    "tenancy.remove_member": RemoveMember,
    "tenancy.leave_tenant": LeaveTenant,
    "tenancy.switch_tenant": SwitchTenant,
}
for _name, _model in COMMANDS.items():
    registry.command(_name, aggregate=Tenant, aggregate_id="tenant_id",
                     roles={"authenticated"}, actor="actor", tenant="tenant_id")(_model)

SAGAS: tuple[type, ...] = ()
