"""Runs the SQL tests of supabase/tests/database with pg_prove, as `supabase test db` would.
Each suite includes the helpers they share (_setup.psql) with psql's `\\ir`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.local.cluster import LocalCluster
from tools.settings import LOCAL_PASSWORD, REPO_ROOT

SQL_DIR = REPO_ROOT / "supabase" / "tests" / "database"
SQL_TESTS = sorted(SQL_DIR.glob("*.test.sql"))
SETUP = SQL_DIR / "_setup.psql"

pytestmark = pytest.mark.integration


def test_there_are_sql_tests() -> None:
    assert SQL_TESTS, "supabase/tests/database has no *.test.sql files"


@pytest.mark.parametrize("sql_test", SQL_TESTS, ids=[p.name for p in SQL_TESTS])
def test_every_suite_takes_the_shared_helpers_from_the_setup_file(sql_test: Path) -> None:
    text = sql_test.read_text(encoding="utf-8")
    assert f"\\ir {SETUP.name}\n" in text, f"{sql_test.name} does not include {SETUP.name}"
    for helper in re.findall(r"create function (pg_temp\.\w+)", SETUP.read_text()):
        assert f"create function {helper}(" not in text, f"{sql_test.name} redefines {helper}"


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
