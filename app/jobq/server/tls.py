"""Server TLS whose certificate, key and client CA are read again when their files change.

gRPC asks the fetcher at each new handshake; it answers None while the files are as they
were, so connections already open keep their session and new ones get the new certificate.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import grpc

log = logging.getLogger("jobq.server")


class ReloadingCertificates:
    def __init__(self, cert_file: str, key_file: str, client_ca_file: str = "") -> None:
        self._paths = [Path(cert_file), Path(key_file)] + (
            [Path(client_ca_file)] if client_ca_file else []
        )
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self.initial = self._configuration()

    def _read_stamp(self) -> tuple[tuple[int, int], ...]:
        stats = [os.stat(p) for p in self._paths]
        return tuple((s.st_mtime_ns, s.st_size) for s in stats)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        cert, key, *ca = (p.read_bytes() for p in self._paths)
        return grpc.ssl_server_certificate_configuration(
            [(key, cert)], root_certificates=ca[0] if ca else None
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC core on its own thread: a new configuration, or None if unchanged."""
        with self._lock:
            try:
                stamp = self._read_stamp()
                if stamp == self._stamp:
                    return None
                configuration = self._configuration()
            except (OSError, ValueError) as exc:
                # Half-written files during a rotation: keep serving the last good ones.
                log.warning("TLS files unreadable, keeping the current ones: %s", exc)
                return None
            self._stamp = stamp
            log.info("TLS certificate files changed: new connections use them")
            return configuration

    def credentials(self, require_client_cert: bool) -> grpc.ServerCredentials:
        # grpc-stubs say the fetcher must return a configuration; gRPC core takes None as
        # "unchanged" (grpc/_server.py), which is what keeps open sessions as they are.
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=require_client_cert,
        )
