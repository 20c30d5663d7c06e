"""Both consumer engines and every producer reach a TLS / SASL broker with the same settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import faust
import pytest

from core.config import KafkaSettings, StreamSettings
from stream.app import faust_options

CA = certifi.where()  # any PEM bundle will do for building a context


def _kafka(**security: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="broker-1:9093,broker-2:9093", **security)  # type: ignore[arg-type]


def _faust(kafka: KafkaSettings, tmp_path: Path) -> dict[str, object]:
    return faust_options(kafka, StreamSettings(), tmp_path)


def test_plaintext_sends_no_credentials(tmp_path: Path) -> None:
    assert "broker_credentials" not in _faust(_kafka(), tmp_path)
    assert "ssl.ca.location" not in _kafka().consumer_config("g")


def test_ssl_gives_faust_a_verifying_context_and_librdkafka_the_same_ca(tmp_path: Path) -> None:
    kafka = _kafka(security_protocol="SSL", ssl_ca_location=CA)

    credentials = _faust(kafka, tmp_path)["broker_credentials"]

    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED
    assert credentials.context.check_hostname
    for config in (kafka.consumer_config("g"), kafka.producer_config()):
        assert (config["security.protocol"], config["ssl.ca.location"]) == ("SSL", CA)


def test_sasl_over_ssl_carries_both_the_login_and_the_tls_context(tmp_path: Path) -> None:
    kafka = _kafka(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="worker", sasl_password="s3cret"
    )

    credentials = _faust(kafka, tmp_path)["broker_credentials"]

    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "worker",
        "s3cret",
        "SCRAM-SHA-512",
    )
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert kafka.consumer_config("g")["sasl.username"] == "worker"


def test_sasl_without_tls_has_no_context_and_sasl_without_a_login_is_refused(tmp_path: Path) -> None:
    plain = _kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    credentials = _faust(plain, tmp_path)["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.ssl_context is None

    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME"):
        _faust(_kafka(security_protocol="SASL_SSL"), tmp_path)
