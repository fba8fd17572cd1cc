"""Tenants and tokens for tests: fixed tenant ids, fresh tenants whose commands are deleted
afterwards, the claims PostgREST sets for a verified JWT, and JWTs of every shape the
gateway and the database must tell apart (valid, forged, expired, unsigned)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import jwt
from psycopg_pool import AsyncConnectionPool

from pump.store.connections import Conn
from tools.local.keys import LOCAL_JWT_SECRET, user_token

TENANT_A = UUID("00000000-0000-4000-8000-00000000000a")
TENANT_B = UUID("00000000-0000-4000-8000-00000000000b")
TENANT_C = UUID("00000000-0000-4000-8000-00000000000c")

# A secret long enough for HS256 that is not the project's: what a forger would sign with.
OTHER_SECRET = "someone-elses-secret-of-a-decent-length!!"


def token(
    claims: dict[str, Any], *, expires_in: int = 3600, secret: str = LOCAL_JWT_SECRET,
    algorithm: str = "HS256",
) -> str:
    """A token shaped as given (no tenant, expired...), signed with the local secret unless
    told otherwise; `iat` and `exp` in `claims` win over the ones made here."""
    now = int(time.time())
    return jwt.encode({"iat": now, "exp": now + expires_in, **claims}, secret,
                      algorithm=algorithm)


def claims_of(signed: str) -> dict[str, Any]:
    """A token's claims, read without checking its signature."""
    claims: dict[str, Any] = jwt.decode(signed, options={"verify_signature": False})
    return claims


def b64url(data: dict[str, Any]) -> str:
    """A JWT segment: the compact JSON of `data`, base64url without padding."""
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """`claims` as an `alg: none` token, which no verifier may accept."""
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def forged_tokens(claims: dict[str, Any]) -> dict[str, str]:
    """Tokens carrying `claims` that no verifier may accept, by what is wrong with them."""
    return {
        "wrong secret": token(claims, secret=OTHER_SECRET),
        "alg none": unsigned(claims),
        "other algorithm": token(claims, algorithm="HS384"),
        "not a jwt": "not.a.token",
    }


def request_claims(
    tenant: UUID, user: UUID | None = None, role: str = "authenticated"
) -> dict[str, Any]:
    """The claims of a verified user token, as PostgREST puts them in request.jwt.claims."""
    return {"sub": str(user or uuid4()), "role": role, "aud": "authenticated",
            "app_metadata": {"tenant_id": str(tenant)}}


def claims_json(
    tenant: UUID, user: UUID | None = None, role: str = "authenticated"
) -> str:
    """`request_claims` as the JSON text request.jwt.claims holds."""
    return json.dumps(request_claims(tenant, user, role))


def new_user() -> tuple[UUID, str]:
    """A signed-in user of a tenant of its own: (the tenant, the user's token)."""
    tenant = uuid4()
    return tenant, user_token(tenant, uuid4())


def any_user() -> str:
    """The token of a signed-in user of a tenant of its own (who sees no one's rows)."""
    return new_user()[1]


@dataclass
class Tenants:
    """Fresh tenants for one test; `forget` deletes their commands, so that no pending
    command of ours is left for a pump in a later test to claim."""

    made: list[UUID] = field(default_factory=list)

    def new(self) -> UUID:
        tenant = uuid4()
        self.made.append(tenant)
        return tenant

    async def forget(self, pool: AsyncConnectionPool[Conn]) -> None:
        async with pool.connection() as conn:
            await conn.execute("delete from intent.commands where tenant_id = any(%s)",
                               (self.made,))


@dataclass(frozen=True)
class TwoTenants:
    """Two tenants and a user in each, with the users' tokens."""

    tenant_a: UUID = field(default_factory=uuid4)
    tenant_b: UUID = field(default_factory=uuid4)
    user_a: UUID = field(default_factory=uuid4)
    user_b: UUID = field(default_factory=uuid4)

    @property
    def token_a(self) -> str:
        return user_token(self.tenant_a, self.user_a)

    @property
    def token_b(self) -> str:
        return user_token(self.tenant_b, self.user_b)
