"""Temporal's address and credentials from the environment (Temporal Cloud, mTLS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.service import TLSConfig

from pump.temporal_settings import TemporalSettings, TemporalSettingsError

VARIABLES = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS",
             "TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH",
             "TEMPORAL_TLS_SERVER_CA_CERT_PATH", "TEMPORAL_TLS_SERVER_NAME", "INTENT_TASK_QUEUE")


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_without_settings_it_is_the_local_dev_server_in_plain_text() -> None:
    settings = TemporalSettings.from_env()
    assert (settings.address, settings.namespace) == ("127.0.0.1:7233", "default")
    assert settings.tls_config() is False
    assert settings.api_key is None


def test_an_api_key_turns_tls_on_with_the_system_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "ns.acct")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-123")
    settings = TemporalSettings.from_env()
    assert settings.api_key == "key-123"
    assert settings.tls_config() is True
    assert settings.namespace == "ns.acct"


def test_mtls_reads_the_certificate_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(b"CERT")
    key.write_bytes(b"KEY")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(key))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
    tls = TemporalSettings.from_env().tls_config()
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.domain) == (
        b"CERT", b"KEY", "temporal.internal")


def test_a_certificate_without_its_key_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert = tmp_path / "client.pem"
    cert.write_bytes(b"CERT")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(cert))
    with pytest.raises(TemporalSettingsError, match="go together"):
        TemporalSettings.from_env()


def test_a_missing_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(tmp_path / "nope.pem"))
    with pytest.raises(TemporalSettingsError, match=r"TEMPORAL_TLS_SERVER_CA_CERT_PATH=.*no such"):
        TemporalSettings.from_env()


def test_tls_flag_must_be_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_TLS", "maybe")
    with pytest.raises(TemporalSettingsError, match="TEMPORAL_TLS"):
        TemporalSettings.from_env()
    monkeypatch.setenv("TEMPORAL_TLS", "true")
    assert TemporalSettings.from_env().tls_config() is True
