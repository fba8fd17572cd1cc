"""The people and tokens of the client scenarios: two tenants, a user in each, anon, and
tokens that must be refused."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from tests.support.http import auth
from tests.support.tenants import OTHER_SECRET, TwoTenants, claims_of, token
from tools.local.keys import anon_key


@dataclass(frozen=True)
class People(TwoTenants):
    item: UUID = field(default_factory=uuid4)  # tenant A's

    @property
    def anon(self) -> str:
        return anon_key()

    @property
    def forged(self) -> str:
        """User A's claims signed with another secret."""
        return token(claims_of(self.token_a), secret=OTHER_SECRET)

    @property
    def expired(self) -> str:
        now = int(time.time())
        return token(claims_of(self.token_a) | {"iat": now - 7200, "exp": now - 3600})

    def headers(self, content_type: str = "application/json") -> dict[str, str]:
        """User A's request headers for a body of `content_type`."""
        return {**auth(self.token_a), "Content-Type": content_type}
