"""The people and tokens of the client scenarios: two tenants, a user in each, anon, and
tokens that must be refused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import jwt

from tools.local_keys import LOCAL_JWT_SECRET, anon_key, user_token


@dataclass(frozen=True)
class People:
    tenant_a: UUID = field(default_factory=uuid4)
    tenant_b: UUID = field(default_factory=uuid4)
    user_a: UUID = field(default_factory=uuid4)
    user_b: UUID = field(default_factory=uuid4)
    item: UUID = field(default_factory=uuid4)  # tenant A's

    @property
    def token_a(self) -> str:
        return user_token(self.tenant_a, self.user_a)

    @property
    def token_b(self) -> str:
        return user_token(self.tenant_b, self.user_b)

    @property
    def anon(self) -> str:
        return anon_key()

    @property
    def forged(self) -> str:
        """User A's claims signed with another secret."""
        claims = jwt.decode(self.token_a, options={"verify_signature": False})
        return jwt.encode(claims, "not-the-project-secret-" + "x" * 20, algorithm="HS256")

    @property
    def expired(self) -> str:
        claims = jwt.decode(self.token_a, options={"verify_signature": False})
        claims |= {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}
        return jwt.encode(claims, LOCAL_JWT_SECRET, algorithm="HS256")
