"""The local keys: fixed project keys, user tokens shaped like GoTrue's, and a verifier that
accepts only HS256 tokens signed with the local secret, unexpired, naming a known role."""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import jwt
import pytest
from click.testing import CliRunner

from tests.support.tenants import b64url
from tools.cli.token import token
from tools.gateway.auth import AuthError, authenticate
from tools.local import keys as local_keys
from tools.local.keys import LOCAL_JWT_SECRET, InvalidTokenError, verify


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": str(uuid4()), "role": "authenticated",
                              "iat": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def test_the_project_keys_are_fixed_strings_with_the_documented_claims() -> None:
    assert local_keys.anon_key() == local_keys.anon_key()
    assert verify(local_keys.anon_key()) == {
        "iss": "intent-local", "role": "anon", "iat": 1763769600, "exp": 2079129600}
    assert verify(local_keys.service_role_key())["role"] == "service_role"
    assert local_keys.anon_key() != local_keys.service_role_key()


def test_a_user_token_carries_the_tenant_where_the_database_reads_it() -> None:
    tenant, user = uuid4(), uuid4()
    claims = verify(local_keys.user_token(tenant, user, expires_in=120))
    assert claims["sub"] == str(user)
    assert claims["role"] == "authenticated"
    assert claims["aud"] == "authenticated"
    assert claims["app_metadata"] == {"tenant_id": str(tenant)}
    assert 100 <= claims["exp"] - int(time.time()) <= 120


def test_a_user_token_refuses_a_role_postgrest_would_not_switch_to() -> None:
    with pytest.raises(ValueError, match="role"):
        local_keys.user_token(uuid4(), uuid4(), role="postgres")


def test_alg_none_is_refused() -> None:
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(_claims())}."
    with pytest.raises(InvalidTokenError, match="algorithm"):
        verify(unsigned)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_are_refused_even_with_the_right_secret(algorithm: str) -> None:
    forged = jwt.encode(_claims(), LOCAL_JWT_SECRET, algorithm=algorithm)
    with pytest.raises(InvalidTokenError, match="algorithm"):
        verify(forged)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = jwt.encode(_claims(), "not-the-local-secret-but-just-as-long-as-it", "HS256")
    with pytest.raises(InvalidTokenError, match="signature"):
        verify(forged)


def test_a_token_whose_claims_were_edited_is_refused() -> None:
    header, _, signature = local_keys.user_token(uuid4(), uuid4()).split(".")
    edited = _claims(app_metadata={"tenant_id": str(uuid4())})
    with pytest.raises(InvalidTokenError, match="signature"):
        verify(f"{header}.{b64url(edited)}.{signature}")


def test_an_expired_token_is_refused_and_marked_expired() -> None:
    with pytest.raises(InvalidTokenError) as refused:
        verify(local_keys.user_token(uuid4(), uuid4(), expires_in=-5))
    assert refused.value.expired


def test_a_token_without_exp_is_refused() -> None:
    with pytest.raises(InvalidTokenError, match="exp") as refused:
        verify(jwt.encode(_claims(exp=None), LOCAL_JWT_SECRET, "HS256"))
    assert not refused.value.expired


def test_a_token_without_a_role_is_refused() -> None:
    with pytest.raises(InvalidTokenError, match="role"):
        verify(jwt.encode(_claims(role=None), LOCAL_JWT_SECRET, "HS256"))


@pytest.mark.parametrize("role", ["postgres", "supabase_admin", "authenticator", ["anon"]])
def test_a_token_naming_another_role_is_refused(role: Any) -> None:
    with pytest.raises(InvalidTokenError, match="role"):
        verify(jwt.encode(_claims(role=role), LOCAL_JWT_SECRET, "HS256"))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "e30.e30.e30"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidTokenError):
        verify(garbage)


def test_the_bearer_wins_over_the_apikey_and_both_must_verify() -> None:
    user = local_keys.user_token(uuid4(), uuid4())
    caller = authenticate({"apiKey": local_keys.anon_key(), "Authorization": f"Bearer {user}"})
    assert caller.role == "authenticated"
    assert caller.token == user
    with pytest.raises(AuthError):
        authenticate({"apikey": "forged", "Authorization": f"Bearer {user}"})
    assert authenticate({"APIKEY": local_keys.service_role_key()}).role == "service_role"


def test_no_token_is_anon_unless_one_is_required() -> None:
    anonymous = authenticate({})
    assert (anonymous.role, anonymous.claims, anonymous.has_token) == (
        "anon", {"role": "anon"}, False)
    with pytest.raises(AuthError) as refused:
        authenticate({"Authorization": "Basic dXNlcjpwdw=="}, require=True)
    assert refused.value.missing


def test_intent_token_prints_a_verifiable_user_token() -> None:
    tenant, user = uuid4(), uuid4()
    result = CliRunner().invoke(
        token, ["--tenant", str(tenant), "--user", str(user), "--role", "service_role",
                "--expires-in", "60"])
    assert result.exit_code == 0, result.output
    claims = verify(result.output.strip())
    assert claims["app_metadata"]["tenant_id"] == str(tenant)
    assert claims["role"] == "service_role"


def test_intent_token_refuses_a_tenant_that_is_not_a_uuid() -> None:
    result = CliRunner().invoke(token, ["--tenant", "acme", "--user", str(uuid4())])
    assert result.exit_code == 2
