"""Kafka connection options from settings: plaintext, TLS, SASL/SCRAM and MSK IAM (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from jobq.config import KafkaSettings
from jobq.core.errors import InvalidArgument
from jobq.events.connection import kafka_config, producer_config


def settings(**values: Any) -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap_servers="b-1.msk:9098,b-2.msk:9098", **values)


def test_plaintext_has_only_servers_and_protocol() -> None:
    assert kafka_config(settings()) == {
        "bootstrap.servers": "b-1.msk:9098,b-2.msk:9098",
        "security.protocol": "PLAINTEXT",
    }


def test_tls_with_a_private_ca() -> None:
    config = kafka_config(
        settings(kafka_security_protocol="SSL", kafka_ssl_ca_location="/etc/ca.pem")
    )
    assert config["security.protocol"] == "SSL"
    assert config["ssl.ca.location"] == "/etc/ca.pem"
    assert "sasl.mechanism" not in config


def test_scram_sends_username_and_password_over_tls() -> None:
    config = kafka_config(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="jobq",
            kafka_sasl_password="secret",
        )
    )
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("jobq", "secret")


def test_iam_uses_oauthbearer_with_a_token_signed_for_the_region() -> None:
    asked: list[str] = []

    def provider(region: str) -> tuple[str, int]:
        asked.append(region)
        return "signed-url-token", 1_700_000_900_000

    config = kafka_config(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="AWS_MSK_IAM",
            aws_region="eu-west-1",
        ),
        token_provider=provider,
    )
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    # librdkafka calls oauth_cb with sasl.oauthbearer.config and wants (token, expiry in s).
    assert config["oauth_cb"]("") == ("signed-url-token", 1_700_000_900.0)
    assert asked == ["eu-west-1"]
    assert "sasl.username" not in config


@pytest.mark.parametrize(
    ("values", "variable"),
    [
        ({}, "JQ_KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_security_protocol": "SASL_SSL"}, "JQ_KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_mechanism": "SCRAM-SHA-512"}, "JQ_KAFKA_SASL_MECHANISM"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-256"},
            "JQ_KAFKA_SASL_USERNAME",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "AWS_MSK_IAM"},
            "JQ_AWS_REGION",
        ),
    ],
)
def test_incomplete_settings_name_the_variable(values: dict[str, Any], variable: str) -> None:
    servers = {} if not values else {"kafka_bootstrap_servers": "b:9092"}
    with pytest.raises(InvalidArgument) as caught:
        kafka_config(KafkaSettings(**servers, **values))
    assert caught.value.field == variable


def test_the_relay_producer_is_idempotent_and_waits_for_all_replicas() -> None:
    config = producer_config(settings(), kafka_config(settings()))
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["max.in.flight.requests.per.connection"] <= 5
