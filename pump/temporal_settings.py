"""Temporal's address and credentials from the environment.

Kept apart from the Temporal wiring (and free of its imports) so that the CLI can name a bad
setting without loading the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.service import TLSConfig

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


@dataclass(frozen=True)
class TemporalSettings:
    """Where Temporal is and how to reach it. Names follow Temporal's own environment
    configuration, so one set of variables serves the `temporal` CLI and Intent alike."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "intent-batches"
    # Temporal Cloud: an API key (TLS on), or mTLS with a client certificate and key.
    api_key: str | None = None
    tls: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None
    server_ca_cert: Path | None = None
    server_name: str | None = None

    @classmethod
    def from_env(cls) -> TemporalSettings:
        env = os.environ
        cert = _path(env, "TEMPORAL_TLS_CLIENT_CERT_PATH")
        key = _path(env, "TEMPORAL_TLS_CLIENT_KEY_PATH")
        if (cert is None) != (key is None):
            raise TemporalSettingsError(
                "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together: "
                "set both (mTLS) or neither")
        tls_flag = env.get("TEMPORAL_TLS", "").strip().lower()
        if tls_flag not in ("", "true", "false", "1", "0"):
            raise TemporalSettingsError(f"TEMPORAL_TLS={tls_flag!r}: use true or false")
        api_key = env.get("TEMPORAL_API_KEY") or None
        ca = _path(env, "TEMPORAL_TLS_SERVER_CA_CERT_PATH")
        return cls(
            address=env.get("TEMPORAL_ADDRESS", cls.address),
            namespace=env.get("TEMPORAL_NAMESPACE", cls.namespace),
            task_queue=env.get("INTENT_TASK_QUEUE", cls.task_queue),
            api_key=api_key,
            tls=tls_flag in ("true", "1") or bool(api_key or cert or ca),
            client_cert=cert,
            client_key=key,
            server_ca_cert=ca,
            server_name=env.get("TEMPORAL_TLS_SERVER_NAME") or None,
        )

    def tls_config(self) -> TLSConfig | bool:
        from temporalio.service import TLSConfig

        if not self.tls:
            return False
        if not (self.client_cert or self.server_ca_cert or self.server_name):
            return True  # the system's roots (Temporal Cloud with an API key)
        return TLSConfig(
            client_cert=self.client_cert.read_bytes() if self.client_cert else None,
            client_private_key=self.client_key.read_bytes() if self.client_key else None,
            server_root_ca_cert=self.server_ca_cert.read_bytes() if self.server_ca_cert else None,
            domain=self.server_name,
        )


class TemporalSettingsError(ValueError):
    """A Temporal setting in the environment is unusable; the message says which."""


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise TemporalSettingsError(f"{name}={raw}: no such file")
    return path
