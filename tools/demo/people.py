"""The demo's people, signed in as an app's users sign in: through `/auth/v1` with email and
password (signed up on the first run, signed in on the next), into tenants made with the
tenancy slice's commands, their token's tenant put there by the access-token hook.

The password is the same well-known local one for everybody: the demo runs against the
local stack only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_auth.errors import AuthApiError

from tools.local.keys import anon_key, verify

DEMO_PASSWORD = "intent-local-demo-password"  # local development only
Send = Callable[..., Awaitable[dict[str, Any]]]


class SignInError(Exception):
    """A person could not sign in, or their token does not carry their tenant."""


@dataclass
class Person:
    name: str
    tenant: UUID
    token: str = ""  # the session's access token, once signed in
    user: UUID | None = None

    @property
    def email(self) -> str:
        return f"{self.name.lower()}@{'acme' if self.name != 'Carol' else 'globex'}.example"


async def signed_in(api_url: str, person: Person) -> AsyncClient:
    """A client with the person's session: sign up, or sign in when they exist already."""
    client = await acreate_client(api_url, anon_key(), AsyncClientOptions(
        auto_refresh_token=False, persist_session=False))
    credentials = {"email": person.email, "password": DEMO_PASSWORD}
    try:
        answer = await client.auth.sign_up(credentials)  # type: ignore[arg-type]
    except AuthApiError as exc:
        if exc.code != "user_already_exists":
            raise SignInError(f"{person.name} could not sign up: {exc.message}") from exc
        answer = await client.auth.sign_in_with_password(credentials)  # type: ignore[arg-type]
    if answer.session is None or answer.user is None:
        raise SignInError(f"{person.name} has no session after signing in")
    person.token, person.user = answer.session.access_token, UUID(answer.user.id)
    return client


async def refreshed(client: AsyncClient, person: Person) -> str:
    """Refresh the session (the hook writes the tenant into the new token); its tenant."""
    answer = await client.auth.refresh_session()
    if answer.session is None:
        raise SignInError(f"{person.name}'s session did not refresh")
    person.token = answer.session.access_token
    tenant = verify(person.token).get("app_metadata", {}).get("tenant_id")
    if tenant != str(person.tenant):
        raise SignInError(f"{person.name}'s token carries tenant {tenant}, not "
                          f"{person.tenant}")
    return str(tenant)


async def form_tenant(send: Send, owner: Person, name: str, members: list[Person]) -> None:
    """`owner` creates the tenant and invites `members`, who accept. Run again (the data is
    kept between runs), each step that was done already is refused as done, which is fine."""
    await send(owner, {"type": "tenancy.create_tenant",
                       "payload": {"tenant_id": str(owner.tenant), "name": name}},
               expect=("processed", "rejected"))
    for member in members:
        invitation = str(uuid4())
        await send(owner, {"type": "tenancy.invite_member", "payload": {
            "tenant_id": str(owner.tenant), "invitation_id": invitation}})
        await send(member, {"type": "tenancy.accept_invitation", "payload": {
            "tenant_id": str(owner.tenant), "invitation_id": invitation}},
            expect=("processed", "rejected"))
