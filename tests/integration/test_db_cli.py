"""`intent db ...` end to end, as a user runs it: a real cluster in a scratch state folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import INTENT, ambient_env, public_tempdir, run_intent
from tools.local.cluster import free_port

pytestmark = pytest.mark.integration


def intent(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_intent(*args, env=env)


@pytest.fixture(scope="module")
def cli_env() -> Iterator[dict[str, str]]:
    with public_tempdir("intent-cli-state-") as state:
        env = ambient_env() | {"INTENT_STATE_DIR": str(state), "INTENT_DB_PORT": str(free_port())}
        yield env
        intent(env, "db", "stop")


def test_db_start_creates_migrates_and_prints_the_url(cli_env: dict[str, str]) -> None:
    result = intent(cli_env, "db", "start")
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url == f"postgresql://postgres:postgres@127.0.0.1:{cli_env['INTENT_DB_PORT']}/postgres"
    assert "created and started" in result.stderr
    assert "applied" in result.stderr
    assert Path(cli_env["INTENT_STATE_DIR"], "pg", "PG_VERSION").exists()
    with psycopg.connect(url) as conn:
        settings: dict[str, str] = dict(conn.execute(
            "select name, setting from pg_settings"
            " where name in ('wal_level', 'listen_addresses')"
        ).fetchall())
        assert conn.execute("select count(*) from intent.events").fetchone() == (0,)
    assert settings == {"wal_level": "logical", "listen_addresses": "127.0.0.1"}


def test_db_start_again_is_harmless(cli_env: dict[str, str]) -> None:
    result = intent(cli_env, "db", "start")
    assert result.returncode == 0, result.stderr
    assert "no pending migrations" in result.stderr


def test_db_migrate_honours_database_url(cli_env: dict[str, str]) -> None:
    url = intent(cli_env, "db", "url").stdout.strip()
    result = intent(cli_env | {"DATABASE_URL": url}, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "no pending migrations" in result.stderr


def test_db_reset_refuses_without_yes_and_wipes_with_it(cli_env: dict[str, str]) -> None:
    url = intent(cli_env, "db", "url").stdout.strip()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create table public.scratch (id int)")
    refused = intent(cli_env, "db", "reset")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    result = intent(cli_env, "db", "reset", "--yes")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('public.scratch')").fetchone() == (None,)
        assert conn.execute("select to_regclass('intent.events')").fetchone() == ("intent.events",)


def test_db_commands_refuse_a_remote_database_url(cli_env: dict[str, str]) -> None:
    remote = cli_env | {"DATABASE_URL": "postgresql://postgres:x@db.example.invalid:5432/postgres"}
    result = intent(remote, "db", "start")
    assert result.returncode == 3
    assert "not this machine" in result.stderr


def test_db_stop_stops_and_a_second_stop_says_so(cli_env: dict[str, str]) -> None:
    assert intent(cli_env, "db", "stop").stderr.strip() == "stopped"
    assert intent(cli_env, "db", "stop").stderr.strip() == "not running"


def test_a_port_in_use_is_a_clear_environment_error(cli_env: dict[str, str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = intent(cli_env | {"INTENT_DB_PORT": str(port)}, "db", "start")
    assert result.returncode == 3
    assert f"port {port}" in result.stderr
    assert "already in use" in result.stderr


def test_a_bad_port_setting_is_a_clear_environment_error(cli_env: dict[str, str]) -> None:
    result = intent(cli_env | {"INTENT_DB_PORT": "fifty"}, "db", "start")
    assert result.returncode == 3
    assert "INTENT_DB_PORT" in result.stderr


@pytest.mark.parametrize(
    "command", [[], ["db"], ["db", "start"], ["db", "stop"], ["db", "reset"], ["db", "migrate"],
                ["db", "url"], ["test"], ["bench"], ["bench", "append"], ["pump"], ["worker"],
                ["sagas"], ["generate"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = subprocess.run([*INTENT, *command, "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0
    assert "Usage:" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the data folder to `postgres`")
def test_a_state_folder_the_server_user_cannot_enter_is_named(cli_env: dict[str, str]) -> None:
    private = Path(tempfile.mkdtemp(prefix="intent-private-"))  # mode 0700, owned by root
    try:
        result = intent(cli_env | {"INTENT_STATE_DIR": str(private)}, "db", "start")
        assert result.returncode == 3
        assert f"cannot enter {private}" in result.stderr
    finally:
        shutil.rmtree(private, ignore_errors=True)
