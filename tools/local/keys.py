"""The local project's JWT secret and keys, as `supabase start` has its own well-known ones.

Development only: the secret is public, so anything signed with it proves nothing outside
this machine. The anon and service_role keys are fixed strings (fixed `iat` and `exp`), so
they can be pasted into a client's configuration once. User tokens carry the tenant in
`app_metadata.tenant_id`, the claim `intent.current_tenant_id()` reads; on hosted Supabase
only the service can set `app_metadata`, so a user cannot choose their tenant.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import jwt

LOCAL_JWT_SECRET = "intent-local-development-jwt-secret-do-not-use-in-production"
LOCAL_ISSUER = "intent-local"
ALGORITHM = "HS256"
# The database roles a token may name; PostgREST would `set role` to any of them.
ROLES = frozenset({"anon", "authenticated", "service_role"})
# The fixed lifetime of the anon and service_role keys: 2025-11-22 to 2035-11-20 (UTC).
KEY_ISSUED_AT = 1763769600
KEY_EXPIRES_AT = 2079129600


class InvalidTokenError(Exception):
    """A token that must not be trusted; `expired` tells a stale token from a bad one."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


def _sign(claims: dict[str, Any], secret: str = LOCAL_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _project_key(role: str) -> str:
    return _sign({"iss": LOCAL_ISSUER, "role": role, "iat": KEY_ISSUED_AT, "exp": KEY_EXPIRES_AT})


def anon_key() -> str:
    """The public key every client sends as `apikey`; requests with it run as `anon`."""
    return _project_key("anon")


def service_role_key() -> str:
    """The server-side key: runs as `service_role`, which bypasses RLS. Never ship it."""
    return _project_key("service_role")


def user_token(
    tenant_id: UUID | str,
    user_id: UUID | str,
    *,
    role: str = "authenticated",
    expires_in: int = 3600,
) -> str:
    """A signed-in user's access token, shaped like GoTrue's, for tests and local clients."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(sorted(ROLES))}, not {role!r}")
    now = int(time.time())
    return _sign(
        {
            "iss": LOCAL_ISSUER,
            "sub": str(UUID(str(user_id))),
            "role": role,
            "aud": "authenticated",
            "iat": now,
            "exp": now + expires_in,
            "app_metadata": {"tenant_id": str(UUID(str(tenant_id)))},
            "user_metadata": {},
        }
    )


def verify(token: str, *, secret: str = LOCAL_JWT_SECRET) -> dict[str, Any]:
    """The claims of a token signed with HS256 by `secret`, unexpired, naming a known role.

    Everything else is refused: `alg: none` and any other algorithm (so a token cannot pick
    how it is checked), a bad signature, a missing or past `exp`, a missing or unknown role.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise InvalidTokenError(f"malformed token: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidTokenError(
            f"unsupported algorithm {header.get('alg')!r}; only HS256 is accepted"
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            # The audience is not checked, as PostgREST does not without jwt-aud.
            options={"require": ["exp"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("JWT expired", expired=True) from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidTokenError(f"the token has no {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise InvalidTokenError("the token's signature does not match") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidTokenError(f"invalid token: {exc}") from None
    role = claims.get("role")
    if role is None:
        raise InvalidTokenError("the token has no 'role' claim")
    if not isinstance(role, str) or role not in ROLES:
        raise InvalidTokenError(
            f"the token's role {role!r} is not one of anon, authenticated, service_role"
        )
    return claims
