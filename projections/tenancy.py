"""Memberships: who belongs to which tenant, with which role, and when they last made it
their active tenant. Part of the framework, like the tenancy slice it reads.

Inline, so that the token a client refreshes right after its command was processed already
carries the change: the access-token hook (supabase/migrations/*_access_token_hook.sql)
reads this table for the user's active tenant and role. No client reads the table itself
(readers=("service_role",)): RLS would scope it to the token's tenant, but a user picking a
tenant needs their memberships in every tenant, and only admins may list a tenant's
members; the RPCs `my_memberships()` and `tenant_members()` say exactly that."""

from __future__ import annotations

from projections.metadata import Column, Index, Projection, Table
from projections.rules import OCCURRED_AT, On, Rules, payload

MEMBER = {"user_id": payload("user_id")}

MEMBERSHIPS = Projection(
    name="memberships",
    version=1,
    tables=(
        Table(
            name="memberships",
            columns=(
                Column(name="tenant_id", type="uuid", nullable=False),
                Column(name="user_id", type="uuid", nullable=False),
                Column(name="role", type="text", nullable=False),
                Column(name="active_at", type="timestamptz", nullable=False),
            ),
            primary_key=("tenant_id", "user_id"),
            indexes=(Index(columns=("user_id", "active_at")),),
        ),
    ),
    readers=("service_role",),
    mode="inline",
    handler=Rules(
        On("tenancy.member_joined", "memberships", key=MEMBER,
           set={"role": payload("role"), "active_at": OCCURRED_AT}),
        On("tenancy.role_changed", "memberships", key=MEMBER, set={"role": payload("role")}),
        On("tenancy.tenant_switched", "memberships", key=MEMBER, set={"active_at": OCCURRED_AT}),
        On("tenancy.member_removed", "memberships", key=MEMBER, delete=True),
        On("tenancy.member_left", "memberships", key=MEMBER, delete=True),
    ),
)
