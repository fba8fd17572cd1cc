"""How the local gateway is configured, and the error it gives when it cannot start."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.settings import REPO_ROOT

DEFAULT_PORT = 54321


class GatewayError(Exception):
    """The gateway cannot start here (port taken, database unreachable, no Deno, ...)."""


@dataclass(frozen=True)
class GatewayConfig:
    database_url: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    functions_dir: Path | None = REPO_ROOT / "supabase" / "functions"
    # supabase/config.toml; None: the config.toml beside the functions folder, if any.
    functions_config: Path | None = None
    deno: Path = REPO_ROOT / "node_modules" / ".bin" / "deno"
    deno_dir: Path = REPO_ROOT / ".intent" / "deno"
    db_pool_size: int = 10
    # Seconds a function may take to listen (the first start may fetch npm packages).
    function_ready_seconds: float = 60.0

    @property
    def url(self) -> str:
        """The URL clients (and the functions, as SUPABASE_URL) reach the gateway at."""
        host = "127.0.0.1" if self.host in {"0.0.0.0", "::", ""} else self.host
        return f"http://{host}:{self.port}"

    def config_toml(self) -> Path | None:
        if self.functions_config is not None:
            return self.functions_config
        if self.functions_dir is None:
            return None
        candidate = self.functions_dir.parent / "config.toml"
        return candidate if candidate.is_file() else None


def read_config_toml(path: Path) -> dict[str, Any]:
    """supabase/config.toml as a document; a file that cannot be read or parsed is a
    GatewayError naming it (the gateway refuses to start)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise GatewayError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GatewayError(f"{path} is not valid TOML: {exc}") from None
