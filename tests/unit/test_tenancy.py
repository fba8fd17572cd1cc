"""The tenancy slice, given/when/then: who may create, invite, join, change roles, remove,
leave and switch, decided on the verified sender; and the platform's hold on the sender
fields (a client cannot name the actor, nor file a command under another tenant)."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, ConfigDict

from domain.aggregate import Aggregate
from domain.contracts import Command, Metadata
from domain.errors import InvalidCommand, RegistryError
from domain.registry import Registry
from domain.tenancy import registry
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
from domain.tenancy.tenant import Tenant, TenantState
from domain.testing import Scenario, ScenarioError, scenarios

T = UUID(int=100)
OWNER, ADMIN, MEMBER, STRANGER = (UUID(int=n) for n in (1, 2, 3, 4))
INVITE = UUID(int=50)
given = scenarios(registry, tenant_id=T)

CREATED = (TenantCreated(tenant_id=T, name="Acme", owner=OWNER),
           MemberJoined(tenant_id=T, user_id=OWNER, role="owner"))
STAFFED = (*CREATED,
           MemberJoined(tenant_id=T, user_id=ADMIN, role="admin", invitation_id=UUID(int=51)),
           MemberJoined(tenant_id=T, user_id=MEMBER, role="member", invitation_id=UUID(int=52)))


def team(*extra: BaseModel) -> Scenario[TenantState]:
    """An owner, an admin and a member, each joined by invitation; then `extra`."""
    invited = (MemberInvited(tenant_id=T, invitation_id=UUID(int=51), role="admin", by=OWNER),
               MemberInvited(tenant_id=T, invitation_id=UUID(int=52), role="member", by=OWNER))
    joined = STAFFED[2:]
    return given(Tenant, *CREATED, *invited, *joined, *extra, aggregate_id=T)


def test_creating_a_tenant_makes_its_sender_the_owner() -> None:
    after = given(Tenant, aggregate_id=T).when(CreateTenant(tenant_id=T, name="Acme"),
                                               user=OWNER).then(*CREATED)
    assert after.state.members == {OWNER: "owner"}


def test_a_tenant_is_created_once_and_only_by_a_signed_in_user() -> None:
    given(Tenant, *CREATED, aggregate_id=T).when(
        CreateTenant(tenant_id=T, name="Again"), user=STRANGER).then_rejected("tenant_exists")
    given(Tenant, aggregate_id=T).when(CreateTenant(tenant_id=T, name="Acme")) \
        .then_rejected("no_user")


def test_an_invitation_is_accepted_once_with_the_role_it_gives() -> None:
    invited = given(Tenant, *CREATED, aggregate_id=T).when(
        InviteMember(tenant_id=T, invitation_id=INVITE, role="admin"), user=OWNER
    ).then(MemberInvited(tenant_id=T, invitation_id=INVITE, role="admin", by=OWNER))
    assert invited.state.invitations == {INVITE: "admin"}
    joined = team(MemberInvited(tenant_id=T, invitation_id=INVITE, role="member", by=ADMIN))
    after = joined.when(AcceptInvitation(tenant_id=T, invitation_id=INVITE), user=STRANGER) \
        .then(MemberJoined(tenant_id=T, user_id=STRANGER, role="member", invitation_id=INVITE))
    assert after.state.members[STRANGER] == "member"
    assert INVITE not in after.state.invitations


def test_an_unknown_invitation_and_a_second_join_are_refused() -> None:
    team().when(AcceptInvitation(tenant_id=T, invitation_id=INVITE), user=STRANGER) \
        .then_rejected("unknown_invitation")
    team(MemberInvited(tenant_id=T, invitation_id=INVITE, role="member", by=OWNER)).when(
        AcceptInvitation(tenant_id=T, invitation_id=INVITE), user=MEMBER) \
        .then_rejected("already_member")


@pytest.mark.parametrize(("sender", "role", "code"), [
    (MEMBER, "member", "not_allowed"),  # members do not invite
    (ADMIN, "admin", "not_allowed"),  # only an owner makes admins
    (STRANGER, "member", "not_a_member"),
])
def test_who_may_invite(sender: UUID, role: str, code: str) -> None:
    team().when(InviteMember(tenant_id=T, invitation_id=INVITE, role=role),
                user=sender).then_rejected(code)


def test_an_admin_removes_a_member_but_not_an_owner() -> None:
    team().when(RemoveMember(tenant_id=T, user_id=MEMBER), user=ADMIN) \
        .then(MemberRemoved(tenant_id=T, user_id=MEMBER, by=ADMIN))
    team().when(RemoveMember(tenant_id=T, user_id=OWNER), user=ADMIN) \
        .then_rejected("not_allowed")
    team().when(RemoveMember(tenant_id=T, user_id=ADMIN), user=MEMBER) \
        .then_rejected("not_allowed")


def test_roles_change_by_the_owner_and_a_tenant_keeps_an_owner() -> None:
    team().when(ChangeRole(tenant_id=T, user_id=MEMBER, role="owner"), user=OWNER) \
        .then(RoleChanged(tenant_id=T, user_id=MEMBER, role="owner", by=OWNER))
    team().when(ChangeRole(tenant_id=T, user_id=OWNER, role="member"), user=OWNER) \
        .then_rejected("last_owner")
    team().when(ChangeRole(tenant_id=T, user_id=MEMBER, role="admin"), user=ADMIN) \
        .then_rejected("not_allowed")
    team().when(LeaveTenant(tenant_id=T), user=OWNER).then_rejected("last_owner")


def test_a_member_leaves_and_switches_to_a_tenant() -> None:
    team().when(LeaveTenant(tenant_id=T), user=MEMBER) \
        .then(MemberLeft(tenant_id=T, user_id=MEMBER))
    team().when(SwitchTenant(tenant_id=T), user=MEMBER) \
        .then(TenantSwitched(tenant_id=T, user_id=MEMBER))
    team().when(SwitchTenant(tenant_id=T), user=STRANGER).then_rejected("not_a_member")
    removed = team(MemberRemoved(tenant_id=T, user_id=MEMBER, by=OWNER))
    removed.when(SwitchTenant(tenant_id=T), user=MEMBER).then_rejected("not_a_member")


def test_a_client_cannot_name_the_actor() -> None:
    with pytest.raises(ScenarioError, match="actor: is the sender's user id"):
        team().when(SwitchTenant(tenant_id=T, actor=OWNER), user=STRANGER)


def _envelope(command_type: str, payload: dict[str, object], tenant: UUID) -> Command:
    return Command(command_id=uuid4(), command_type=command_type, payload=payload,
                   metadata=Metadata(tenant_id=tenant, user_id=MEMBER, correlation_id=uuid4()))


def test_a_command_filed_under_another_tenant_than_it_names_is_refused() -> None:
    parsed = registry.parse_command(
        _envelope("tenancy.switch_tenant", {"tenant_id": str(T)}, T))
    assert parsed.payload.actor == MEMBER  # type: ignore[attr-defined]
    with pytest.raises(InvalidCommand, match="tenant_id: names another tenant"):
        registry.parse_command(
            _envelope("tenancy.switch_tenant", {"tenant_id": str(T)}, UUID(int=999)))


class _Bad(BaseModel):
    model_config = ConfigDict(frozen=True)
    thing_id: UUID
    actor: UUID  # required: the platform could not leave it out for a service


class _State(BaseModel):
    pass


class _Thing(Aggregate[_State]):
    type_name = "x.thing"
    state_model = _State


def test_the_registry_refuses_sender_fields_it_could_not_fill() -> None:
    with pytest.raises(RegistryError, match=re.escape("must be `actor: UUID | None = None`")):
        Registry().command("x.do", aggregate=_Thing, aggregate_id="thing_id",
                           roles={"authenticated"}, actor="actor")(_Bad)
    with pytest.raises(RegistryError, match="tenant field 'tenant' must be a required UUID"):
        Registry().command("x.do", aggregate=_Thing, aggregate_id="thing_id",
                           roles={"authenticated"}, tenant="tenant")(_Bad)
