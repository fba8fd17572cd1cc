"""Who a request is from, the same way for every path the gateway serves.

Clients send the project key as `apikey` (any case: supabase-py sends `apiKey`) and the
user's token as `Authorization: Bearer`; the token that counts is the bearer when there is
one, else the apikey. Every token present must verify, as on hosted Supabase, where the API
gateway checks the apikey before the service checks the bearer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.local import keys as local_keys

ANON_ROLE = "anon"


@dataclass(frozen=True)
class Caller:
    """A verified caller: its database role and JWT claims (`token` is None for no JWT)."""

    role: str
    claims: dict[str, Any] = field(default_factory=dict)
    token: str | None = None

    @property
    def has_token(self) -> bool:
        return self.token is not None


class AuthError(Exception):
    """A token was sent and it does not verify; `missing` means no token was sent at all."""

    def __init__(self, reason: str, *, expired: bool = False, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired
        self.missing = missing


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <token>`; other schemes carry no JWT."""
    value = _header(headers, "authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def api_key(headers: Mapping[str, str]) -> str | None:
    value = _header(headers, "apikey")
    return value.strip() if value and value.strip() else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's headers are case-insensitive already; a plain dict (tests, realtime
    # query parameters) is searched by hand.
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def verify_token(token: str, *, secret: str) -> Caller:
    if not token.isascii():
        # A JWT is base64url and dots; header bytes that are not UTF-8 arrive as lone
        # surrogates, which the JWT library cannot even encode (it raised, a 500).
        raise AuthError("malformed token: a JWT is ASCII")
    try:
        claims = local_keys.verify(token, secret=secret)
    except local_keys.InvalidTokenError as exc:
        raise AuthError(exc.reason, expired=exc.expired) from None
    return Caller(role=str(claims["role"]), claims=claims, token=token)


def authenticate(
    headers: Mapping[str, str], *, secret: str = local_keys.LOCAL_JWT_SECRET,
    require: bool = False, query_api_key: str | None = None,
) -> Caller:
    """The caller of a request. Without any token it is `anon` (PostgREST's anonymous
    role) unless `require`, which raises AuthError(missing=True). `query_api_key` is an
    `?apikey=` parameter, which Supabase's API gateway accepts in place of the header."""
    bearer = bearer_token(headers)
    key = api_key(headers) or (query_api_key.strip() if query_api_key else None) or None
    if key is not None and key != bearer:
        verify_token(key, secret=secret)
    token = bearer or key
    if token is None:
        if require:
            raise AuthError("no authorization header", missing=True)
        return Caller(role=ANON_ROLE, claims={"role": ANON_ROLE})
    return verify_token(token, secret=secret)
