"""What the local `/auth/v1` (a development stand-in, not GoTrue) reads from config.toml.

The same keys the Supabase CLI reads for its local Auth, so that one `supabase/config.toml`
configures both: `[auth] jwt_expiry, enable_signup, enable_refresh_token_rotation,
refresh_token_reuse_interval, minimum_password_length` and `[auth.hook.custom_access_token]
enabled, uri` (a `pg-functions://postgres/<schema>/<function>` URI). A test points the
gateway at its own config.toml (`intent gateway --config`) to enable a hook of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.gateway.config import GatewayError, read_config_toml

_HOOK_URI = re.compile(r"^pg-functions://[^/]+/([A-Za-z_][A-Za-z0-9_]*)/([A-Za-z_][A-Za-z0-9_]*)$")
# bcrypt reads at most 72 bytes; GoTrue refuses longer passwords rather than cut them.
MAX_PASSWORD_BYTES = 72


@dataclass(frozen=True)
class HookFunction:
    """The SQL function a pg-functions hook URI names."""

    schema: str
    name: str


@dataclass(frozen=True)
class AuthSettings:
    """GoTrue's defaults, as the Supabase CLI's config.toml documents them."""

    jwt_expiry: int = 3600
    enable_signup: bool = True
    refresh_token_rotation: bool = True
    refresh_token_reuse_interval: int = 10
    minimum_password_length: int = 6
    access_token_hook: HookFunction | None = None


def _table(document: dict[str, Any], *path: str) -> dict[str, Any]:
    node: Any = document
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    if not isinstance(node, dict):
        raise GatewayError(f"config.toml: [{'.'.join(path)}] must be a table")
    return node


def _value(table: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = table.get(key, default)
    if type(value) is not kind:
        raise GatewayError(f"config.toml: {where}.{key} must be a {kind.__name__}")
    return value


def parse_hook(table: dict[str, Any]) -> HookFunction | None:
    """The enabled custom access token hook's function, or None when it is off."""
    where = "auth.hook.custom_access_token"
    if not _value(table, "enabled", bool, False, where):
        return None
    uri = _value(table, "uri", str, "", where)
    match = _HOOK_URI.match(uri)
    if match is None:
        raise GatewayError(
            f"config.toml: {where}.uri must be pg-functions://postgres/<schema>/<function> "
            f"(the local gateway runs only Postgres hooks), not {uri!r}")
    return HookFunction(schema=match.group(1), name=match.group(2))


def read_auth_settings(config_toml: Path | None) -> AuthSettings:
    """The settings of `[auth]` in config.toml; GoTrue's defaults without one."""
    if config_toml is None:
        return AuthSettings()
    document = read_config_toml(config_toml)
    auth = _table(document, "auth")
    defaults = AuthSettings()
    settings = AuthSettings(
        jwt_expiry=_value(auth, "jwt_expiry", int, defaults.jwt_expiry, "auth"),
        enable_signup=_value(auth, "enable_signup", bool, defaults.enable_signup, "auth"),
        refresh_token_rotation=_value(auth, "enable_refresh_token_rotation", bool,
                                      defaults.refresh_token_rotation, "auth"),
        refresh_token_reuse_interval=_value(auth, "refresh_token_reuse_interval", int,
                                            defaults.refresh_token_reuse_interval, "auth"),
        minimum_password_length=_value(auth, "minimum_password_length", int,
                                       defaults.minimum_password_length, "auth"),
        access_token_hook=parse_hook(_table(document, "auth", "hook", "custom_access_token")),
    )
    if not 1 <= settings.jwt_expiry <= 604_800:
        raise GatewayError("config.toml: auth.jwt_expiry must be 1 to 604800 seconds")
    if settings.refresh_token_reuse_interval < 0:
        raise GatewayError("config.toml: auth.refresh_token_reuse_interval must be >= 0")
    if not 6 <= settings.minimum_password_length <= MAX_PASSWORD_BYTES:
        raise GatewayError("config.toml: auth.minimum_password_length must be 6 to 72")
    return settings
