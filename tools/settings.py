"""Where things are, from the environment: one place so every command agrees."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PORT = 54322
# Well-known local development passwords (as `supabase start` uses); never for production.
LOCAL_PASSWORD = "postgres"
LOCAL_SUPERUSER = "supabase_admin"


class SettingsError(Exception):
    """A setting in the environment is unusable; the message says which and why."""


def project_config(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest pyproject.toml at or above `start` (default: the working directory) with a
    `[tool.intent]` table: the project's folder and that table; None when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if not pyproject.is_file():
            continue
        with pyproject.open("rb") as fh:
            table = tomllib.load(fh).get("tool", {}).get("intent")
        if isinstance(table, dict):
            return folder, table
    return None


def state_dir() -> Path:
    return Path(os.environ.get("INTENT_STATE_DIR", REPO_ROOT / ".intent"))


def migrations_dir() -> Path:
    return Path(os.environ.get("INTENT_MIGRATIONS_DIR", REPO_ROOT / "supabase" / "migrations"))


def db_port() -> int:
    raw = os.environ.get("INTENT_DB_PORT", str(DEFAULT_DB_PORT))
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"INTENT_DB_PORT={raw!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"INTENT_DB_PORT={port} is outside 1-65535")
    return port


def local_url(port: int, *, user: str = "postgres", dbname: str = "postgres") -> str:
    return f"postgresql://{user}:{LOCAL_PASSWORD}@127.0.0.1:{port}/{dbname}"


@dataclass(frozen=True)
class Database:
    """The database a command talks to: DATABASE_URL when set, else the embedded cluster."""

    url: str
    from_env: bool

    @property
    def is_local(self) -> bool:
        host = conninfo_to_dict(self.url).get("host") or "localhost"
        return str(host) in {"127.0.0.1", "localhost", "::1"}

    @property
    def port(self) -> int:
        return int(conninfo_to_dict(self.url).get("port") or 5432)

    def as_user(self, user: str, password: str = LOCAL_PASSWORD) -> str:
        """The same server as another role (used for the local superuser's bootstrap)."""
        return make_conninfo(self.url, user=user, password=password)

    def redacted(self) -> str:
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url


def database() -> Database:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        try:
            conninfo_to_dict(url)
        except Exception as exc:
            raise SettingsError(f"DATABASE_URL is not a valid connection string: {exc}") from None
        return Database(url=url, from_env=True)
    return Database(url=local_url(db_port()), from_env=False)
