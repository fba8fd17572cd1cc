"""Where Temporal is and how to reach it: Temporal's own client configuration
(`temporalio.envconfig`), plus Intent's task queue.

The connection (address, namespace, API key, TLS, gRPC metadata) is configured exactly as
Temporal documents it for every SDK and the `temporal` CLI: the `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_TLS*` and `TEMPORAL_GRPC_META_*`
variables over a profile of the TOML file (`TEMPORAL_CONFIG_FILE`, by default
~/.config/temporalio/temporal.toml; profile `TEMPORAL_PROFILE`, by default `default`).

The SDK is imported only when the settings are read, so that the CLI (which names a bad
setting through TemporalSettingsError) starts without loading it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.service import TLSConfig

DEFAULT_ADDRESS = "127.0.0.1:7233"  # the local dev server (`intent dev`, the tests)
DEFAULT_NAMESPACE = "default"
DEFAULT_TASK_QUEUE = "intent-batches"

# The dev-server tuning measured on the architecture page: without it every workflow waits
# on ~100 ms poll intervals; with it, ~35 ms.
DEV_SERVER_TUNING = [
    "--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.timerProcessorMaxPollRPS=10000",
    "--dynamic-config-value", "history.visibilityProcessorMaxPollRPS=10000",
    # Eager starts and eager activities: a worker on the starting client (or the worker that
    # completed the workflow task) gets the next task in the reply, skipping a poll each.
    "--dynamic-config-value", "system.enableEagerWorkflowStart=true",
    "--dynamic-config-value", "system.enableActivityEagerExecution=true",
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
]

# The only values Temporal reads as a boolean; anything else is silently ignored (and
# TEMPORAL_TLS=no would then turn TLS on), so Intent refuses it.
_BOOLEANS = frozenset({"true", "false", "1", "0"})


@dataclass(frozen=True)
class TemporalSettings:
    """The arguments of `Client.connect` (from Temporal's configuration) and the task queue
    of the batch workflow (Intent's own, INTENT_TASK_QUEUE)."""

    address: str = DEFAULT_ADDRESS
    namespace: str = DEFAULT_NAMESPACE
    task_queue: str = DEFAULT_TASK_QUEUE
    api_key: str | None = None
    # False: plain text; True: TLS with the system's roots; a TLSConfig: mTLS, a private CA
    # or a server name to verify (the files already read).
    tls: bool | TLSConfig = False
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TemporalSettings:
        """Read from `env` (default: the process's environment) and the profile it names.
        An empty variable counts as unset, as it always did for Intent (except an empty
        TEMPORAL_GRPC_META_*, which Temporal reads as "drop this header")."""
        from temporalio.envconfig import ClientConfigProfile

        env = os.environ if env is None else env
        given = {k: v for k, v in env.items() if v or k.startswith("TEMPORAL_GRPC_META_")}
        tls_flag = given.get("TEMPORAL_TLS")
        if tls_flag is not None and tls_flag.lower() not in _BOOLEANS:
            raise TemporalSettingsError(f"TEMPORAL_TLS={tls_flag!r}: use true or false")
        try:
            profile = ClientConfigProfile.load(override_env_vars=given)
        except RuntimeError as exc:  # the bridge's ConfigError: a bad file, an unknown profile
            raise TemporalSettingsError(f"Temporal client configuration: {exc}") from exc
        if profile.tls is not None and (
            (profile.tls.client_cert is None) != (profile.tls.client_private_key is None)
        ):
            raise TemporalSettingsError(
                "a Temporal client certificate and its key go together (TEMPORAL_TLS_CLIENT_"
                "CERT_* and TEMPORAL_TLS_CLIENT_KEY_*, or the profile's tls.client_cert_* "
                "and tls.client_key_*): set both (mTLS) or neither")
        try:
            connect = profile.to_client_connect_config()
        except OSError as exc:  # a certificate or key file that cannot be read
            raise TemporalSettingsError(
                f"Temporal TLS file {exc.filename}: {exc.strerror or exc}") from exc
        return cls(
            address=connect.get("target_host") or DEFAULT_ADDRESS,
            namespace=connect.get("namespace") or DEFAULT_NAMESPACE,
            task_queue=given.get("INTENT_TASK_QUEUE", DEFAULT_TASK_QUEUE),
            api_key=connect.get("api_key"),
            tls=connect.get("tls", False),
            rpc_metadata=connect.get("rpc_metadata", {}),
        )


class TemporalSettingsError(ValueError):
    """A Temporal setting is unusable; the message says which."""
