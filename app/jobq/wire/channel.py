"""The one place a channel to jq-server is opened: TLS, or plaintext where allowed.

Plaintext only to a loopback address (local development) or when told so (`plaintext`,
JQ_PLAINTEXT): a bearer credential must not cross a network in the clear by accident.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


@dataclasses.dataclass(frozen=True, slots=True)
class Tls:
    ca_file: str = ""  # the CA of the server's certificate; empty: the system's roots
    cert_file: str = ""  # a client certificate and key, for mTLS
    key_file: str = ""
    server_name: str = ""  # the name the server's certificate carries, if not the host's
    plaintext: bool = False

    @classmethod
    def from_settings(cls, settings: Any) -> Tls:
        """From TlsClientSettings (JQ_TLS_CA_FILE, JQ_TLS_CLIENT_CERT_FILE, ...)."""
        return cls(
            ca_file=settings.tls_ca_file,
            cert_file=settings.tls_client_cert_file,
            key_file=settings.tls_client_key_file,
            server_name=settings.tls_server_name,
            plaintext=settings.plaintext,
        )


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.enable_retries", 1),
    ]


def is_loopback(address: str) -> bool:
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    if address.startswith("["):
        host = address.split("]")[0] + "]"
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def open_channel(
    address: str, tls: Tls | None, options: Sequence[tuple[str, Any]]
) -> grpc.aio.Channel:
    tls = tls or Tls()
    wants_tls = bool(tls.ca_file or tls.cert_file)
    if tls.plaintext or (not wants_tls and is_loopback(address)):
        return grpc.aio.insecure_channel(address, options=list(options))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca_file).read_bytes() if tls.ca_file else None,
        private_key=Path(tls.key_file).read_bytes() if tls.key_file else None,
        certificate_chain=Path(tls.cert_file).read_bytes() if tls.cert_file else None,
    )
    extra = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return grpc.aio.secure_channel(address, credentials, options=[*options, *extra])
