"""Kafka client configuration from settings: plaintext locally; TLS, SASL/SCRAM or IAM on MSK.

One function builds the librdkafka options every jobq client (relay producer, admin, tail
consumer) starts from, so the three connect the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jobq.config import KafkaSettings
from jobq.core.errors import InvalidArgument

# MSK IAM: librdkafka speaks OAUTHBEARER; the token is a SigV4-signed URL from the AWS MSK
# IAM signer, valid 15 minutes, and librdkafka asks for a new one before it expires.
AWS_MSK_IAM = "AWS_MSK_IAM"

TokenProvider = Callable[[str], tuple[str, int]]  # region -> (token, expiry epoch ms)


def _msk_iam_token(region: str) -> tuple[str, int]:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return str(token), int(expiry_ms)


def kafka_config(
    settings: KafkaSettings, token_provider: TokenProvider = _msk_iam_token
) -> dict[str, Any]:
    """librdkafka options for settings.kafka_*; raises InvalidArgument naming the variable."""
    if not settings.kafka_bootstrap_servers:
        raise InvalidArgument("JQ_KAFKA_BOOTSTRAP_SERVERS", "is empty: Kafka is not configured")
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
    }
    protocol = settings.kafka_security_protocol
    mechanism = settings.kafka_sasl_mechanism
    if protocol in ("SSL", "SASL_SSL") and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    if not protocol.startswith("SASL_"):
        if mechanism:
            raise InvalidArgument(
                "JQ_KAFKA_SASL_MECHANISM",
                f"{mechanism} needs JQ_KAFKA_SECURITY_PROTOCOL=SASL_SSL (is {protocol})",
            )
        return config
    if not mechanism:
        raise InvalidArgument("JQ_KAFKA_SASL_MECHANISM", f"is required with {protocol}")
    if mechanism == AWS_MSK_IAM:
        if not settings.aws_region:
            raise InvalidArgument("JQ_AWS_REGION", "is required for AWS_MSK_IAM")
        region = settings.aws_region

        def oauth_cb(_config: str) -> tuple[str, float]:
            token, expiry_ms = token_provider(region)
            return token, expiry_ms / 1000

        config["sasl.mechanism"] = "OAUTHBEARER"
        config["oauth_cb"] = oauth_cb
        return config
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise InvalidArgument(
            "JQ_KAFKA_SASL_USERNAME", f"and JQ_KAFKA_SASL_PASSWORD are required for {mechanism}"
        )
    config["sasl.mechanism"] = mechanism
    config["sasl.username"] = settings.kafka_sasl_username
    config["sasl.password"] = settings.kafka_sasl_password
    return config


def producer_config(settings: KafkaSettings, base: dict[str, Any]) -> dict[str, Any]:
    """The relay's producer: idempotent, acks from every in-sync replica, order kept on retry."""
    return {
        **base,
        "enable.idempotence": True,
        "acks": "all",
        # Idempotence keeps order per partition with up to 5 requests in flight.
        "max.in.flight.requests.per.connection": 5,
        "delivery.timeout.ms": int(settings.kafka_delivery_timeout.total_seconds() * 1000),
        "linger.ms": 5,
        "compression.type": "lz4",
    }
