"""`intent operator grant|revoke|list` as an operator runs it: grant by email (twice is
fine), list shows the user, revoke by email, and the documented exit codes: 1 for an
unknown email or revoking a non-operator, 3 for a database that cannot be reached."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from tests.support.processes import run_intent

pytestmark = pytest.mark.integration


@pytest.fixture
def user(database_url: str) -> Iterator[tuple[str, str]]:
    """A user of Auth (email, id), removed with any operator row afterwards."""
    user_id, email = str(uuid4()), f"Operator-{uuid4().hex[:8]}@Example.com"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email, aud, role) values"
                     " (%s, %s, 'authenticated', 'authenticated')", (user_id, email))
    try:
        yield email, user_id
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("delete from intent.operators where user_id = %s", (user_id,))
            conn.execute("delete from auth.users where id = %s", (user_id,))


def operator(database_url: str, *args: str) -> Any:
    return run_intent("operator", *args, "--database-url", database_url, timeout=60)


def test_grant_list_and_revoke_by_email(database_url: str, user: tuple[str, str]) -> None:
    email, user_id = user
    granted = operator(database_url, "grant", email.lower())
    assert granted.returncode == 0, granted.stderr
    assert f"({user_id}) is now an operator" in granted.stdout
    again = operator(database_url, "grant", email)
    assert again.returncode == 0
    assert "was already an operator" in again.stdout

    listed = operator(database_url, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"user_id": user_id, "email": email} in [
        {k: row[k] for k in ("user_id", "email")} for row in json.loads(listed.stdout)]
    assert user_id in operator(database_url, "list").stdout

    revoked = operator(database_url, "revoke", email)
    assert revoked.returncode == 0
    assert "is no longer an operator" in revoked.stdout
    twice = operator(database_url, "revoke", email)
    assert twice.returncode == 1
    assert "is not an operator" in twice.stderr
    assert user_id not in operator(database_url, "list").stdout


def test_an_unknown_email_is_exit_1_and_an_unreachable_database_exit_3(
    database_url: str,
) -> None:
    unknown = operator(database_url, "grant", "nobody-at-all@example.com")
    assert unknown.returncode == 1
    assert "no user with email" in unknown.stderr
    unreachable = run_intent("operator", "list", "--database-url",
                             "postgresql://postgres@127.0.0.1:1/postgres", timeout=60)
    assert unreachable.returncode == 3
    assert "cannot reach the database" in unreachable.stderr
