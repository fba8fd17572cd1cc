"""Temporal's address and credentials from Temporal's own client configuration (environment
variables over a TOML profile): Temporal Cloud, mTLS, a private CA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from pump.temporal.settings import TemporalSettings, TemporalSettingsError


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient Temporal settings: neither the developer's variables nor their profile."""
    for name in list(os.environ):
        if name.startswith("TEMPORAL_") or name == "INTENT_TASK_QUEUE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "absent.toml"))


def _tls(settings: TemporalSettings) -> TLSConfig:
    assert isinstance(settings.tls, TLSConfig)
    return settings.tls


def test_without_settings_it_is_the_local_dev_server_in_plain_text() -> None:
    settings = TemporalSettings.from_env()
    assert (settings.address, settings.namespace) == ("127.0.0.1:7233", "default")
    assert settings.tls is False
    assert settings.api_key is None
    assert settings.task_queue == "intent-batches"


def test_the_task_queue_is_intents_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENT_TASK_QUEUE", "intent-staging")
    assert TemporalSettings.from_env().task_queue == "intent-staging"


def test_an_api_key_turns_tls_on_with_the_system_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ns.acct")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-123")
    settings = TemporalSettings.from_env()
    assert settings.api_key == "key-123"
    assert settings.tls is True
    assert (settings.address, settings.namespace) == ("ns.acct.tmprl.cloud:7233", "ns.acct")


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
                 "TEMPORAL_TLS_SERVER_NAME"):
        monkeypatch.setenv(name, "")
    settings = TemporalSettings.from_env()
    assert (settings.address, settings.api_key, settings.tls) == ("127.0.0.1:7233", None, False)


def test_mtls_reads_the_certificate_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    tls = _tls(TemporalSettings.from_env())
    assert (tls.client_cert, tls.client_private_key, tls.domain) == (
        b"CERT", b"KEY", "temporal.internal")


def test_a_private_ca_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"CA")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(ca))
    assert _tls(TemporalSettings.from_env()).server_root_ca_cert == b"CA"


def test_a_certificate_without_its_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert = tmp_path / "client.pem"
    cert.write_bytes(b"CERT")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    with pytest.raises(TemporalSettingsError, match="go together"):
        TemporalSettings.from_env()


def test_a_missing_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(missing))
    with pytest.raises(TemporalSettingsError, match=rf"{missing}.*No such file"):
        TemporalSettings.from_env()


def test_tls_flag_must_be_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "maybe")
    with pytest.raises(TemporalSettingsError, match="TEMPORAL_TLS"):
        TemporalSettings.from_env()
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    assert _tls(TemporalSettings.from_env()) == TLSConfig()  # the system's roots
    monkeypatch.setenv("TEMPORAL_TLS", "false")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-123")  # an API key over plain text, if asked
    assert TemporalSettings.from_env().tls is False


PROFILES = """
[profile.default]
address = "file.example:7233"
namespace = "from-file"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "file-key"

[profile.cloud.grpc_meta]
x-team = "payments"
"""


def test_the_toml_profile_is_read_and_the_environment_overrides_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "temporal.toml"
    config.write_text(PROFILES)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config))
    settings = TemporalSettings.from_env()
    assert (settings.address, settings.namespace, settings.tls) == (
        "file.example:7233", "from-file", False)
    monkeypatch.setenv("TEMPORAL_PROFILE", "cloud")
    cloud = TemporalSettings.from_env()
    assert (cloud.address, cloud.api_key, cloud.tls) == (
        "ns.acct.tmprl.cloud:7233", "file-key", True)
    assert cloud.rpc_metadata == {"x-team": "payments"}
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ns2.acct")
    assert TemporalSettings.from_env().namespace == "ns2.acct"


def test_an_unknown_profile_or_a_broken_file_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEMPORAL_PROFILE", "staging")
    with pytest.raises(TemporalSettingsError, match="staging"):
        TemporalSettings.from_env()
    broken = tmp_path / "broken.toml"
    broken.write_text("[profile.default\n")
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(broken))
    monkeypatch.delenv("TEMPORAL_PROFILE")
    with pytest.raises(TemporalSettingsError, match="TOML"):
        TemporalSettings.from_env()
