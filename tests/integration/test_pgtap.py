"""Runs the SQL tests of supabase/tests/database with pg_prove, as `supabase test db` would."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tools.local_pg import LocalCluster
from tools.settings import LOCAL_PASSWORD, REPO_ROOT

SQL_TESTS = sorted((REPO_ROOT / "supabase" / "tests" / "database").glob("*.test.sql"))

pytestmark = pytest.mark.integration


def test_there_are_sql_tests() -> None:
    assert SQL_TESTS, "supabase/tests/database has no *.test.sql files"


@pytest.mark.parametrize("sql_test", SQL_TESTS, ids=[p.name for p in SQL_TESTS])
def test_sql_suite_passes_under_pg_prove(pg_cluster: LocalCluster, sql_test: object) -> None:
    pg_prove = shutil.which("pg_prove")
    assert pg_prove, "pg_prove is missing: ./run setup installs it (Debian's pgtap tools)"
    env = {**os.environ, "PGPASSWORD": LOCAL_PASSWORD}
    proc = subprocess.run(
        [pg_prove, "-h", "127.0.0.1", "-p", str(pg_cluster.port), "-U", "postgres",
         "-d", "postgres", "--verbose", str(sql_test)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
