"""mTLS with certificates made here (trustme): who is refused at the handshake, who by the
SAN mapping, and a server certificate rotated while clients stay connected."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jobq.client import AsyncClient, Tls
from jobq.config import ServerSettings
from jobq.core.errors import PermissionDenied, Unavailable
from jobq.core.model import JobFilter
from jobq.server.app import ServerApp

SPIFFE_WORKER = "spiffe://jobq.test/ns/jobs/sa/worker"
SUBJECTS = {
    SPIFFE_WORKER: {"tenant": "*", "roles": ["worker"]},
    "ops.jobq.test": {"tenant": "*", "roles": ["submitter", "operator"]},
}


def spiffe_cert(ca: trustme.CA, uri: str, folder: Path) -> tuple[Path, Path]:
    """A client certificate whose only SAN is a URI (trustme makes DNS, IP and email ones)."""
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "worker")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = folder / "spiffe.pem", folder / "spiffe.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def leaf_files(leaf: trustme.LeafCert, folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    return cert, key


@contextlib.asynccontextmanager
async def tls_server(
    tmp_path: Path, cert: Path, key: Path, client_ca: Path
) -> AsyncIterator[ServerApp]:
    app = ServerApp(
        ServerSettings(
            grpc_port=0,
            http_port=0,
            database_url=f"sqlite:///{tmp_path}/jobq.db",
            shutdown_grace=dt.timedelta(seconds=1),
            tls_cert_file=str(cert),
            tls_key_file=str(key),
            tls_client_ca_file=str(client_ca),
            auth_mtls_subjects=json.dumps(SUBJECTS),
        )
    )
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca, foreign = trustme.CA(), trustme.CA()
    files: dict[str, Path] = {}
    files["ca"] = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(files["ca"]))
    files["server"], files["server_key"] = leaf_files(
        ca.issue_cert("localhost", "127.0.0.1"), tmp_path, "server"
    )
    files["ops"], files["ops_key"] = leaf_files(ca.issue_cert("ops.jobq.test"), tmp_path, "ops")
    files["stranger"], files["stranger_key"] = leaf_files(
        ca.issue_cert("stranger.jobq.test"), tmp_path, "stranger"
    )
    files["foreign"], files["foreign_key"] = leaf_files(
        foreign.issue_cert("ops.jobq.test"), tmp_path, "foreign"
    )
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    files["expired"], files["expired_key"] = leaf_files(
        ca.issue_cert("ops.jobq.test", not_before=past - dt.timedelta(days=1), not_after=past),
        tmp_path,
        "expired",
    )
    files["spiffe"], files["spiffe_key"] = spiffe_cert(ca, SPIFFE_WORKER, tmp_path)
    return files


def client(app: ServerApp, ca: Path, cert: Path | None, key: Path | None) -> AsyncClient:
    tls = Tls(ca_file=str(ca), cert_file=str(cert or ""), key_file=str(key or ""))
    return AsyncClient(f"localhost:{app.grpc_port}", tls=tls, timeout=5)


async def test_a_mapped_san_is_a_principal_and_others_are_refused(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    async with tls_server(tmp_path, pki["server"], pki["server_key"], pki["ca"]) as app:
        # Given a certificate whose DNS SAN maps to submitter+operator: it submits and steers.
        async with client(app, pki["ca"], pki["ops"], pki["ops_key"]) as ops:
            job = await ops.submit("echo", {"via": "mtls"})
            assert (await ops.get(job.id)).id == job.id
            assert [q.name for q in await ops.list_queues()] == ["default"]
        # A SPIFFE URI mapped to worker: the worker role only.
        async with client(app, pki["ca"], pki["spiffe"], pki["spiffe_key"]) as worker:
            with pytest.raises(PermissionDenied, match="submitter role"):
                await worker.submit("echo", {})
        # A valid certificate whose SAN is not mapped: PERMISSION_DENIED, not a principal.
        async with client(app, pki["ca"], pki["stranger"], pki["stranger_key"]) as stranger:
            with pytest.raises(PermissionDenied, match="not mapped"):
                await stranger.submit("echo", {})
        # Refused at the handshake: no certificate, another CA's, an expired one, plaintext.
        for cert, key in (
            (None, None),
            (pki["foreign"], pki["foreign_key"]),
            (pki["expired"], pki["expired_key"]),
        ):
            async with client(app, pki["ca"], cert, key) as refused:
                with pytest.raises(Unavailable):
                    await refused.submit("echo", {})
        async with AsyncClient(
            f"127.0.0.1:{app.grpc_port}", tls=Tls(plaintext=True), timeout=5
        ) as plaintext:
            with pytest.raises(Unavailable):
                await plaintext.submit("echo", {})
        jobs = await app.store.jobs.page(JobFilter(), 10, None)
        assert [j.id for j in jobs.jobs] == [job.id], "nothing but the mapped client's job"


async def test_a_rotated_server_certificate_reaches_new_connections_and_spares_old_ones(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    live_cert, live_key = tmp_path / "live.pem", tmp_path / "live.key"
    live_cert.write_bytes(pki["server"].read_bytes())
    live_key.write_bytes(pki["server_key"].read_bytes())
    async with (
        tls_server(tmp_path, live_cert, live_key, pki["ca"]) as app,
        client(app, pki["ca"], pki["ops"], pki["ops_key"]) as connected,
    ):
        await connected.submit("echo", {"n": 1})
        # When: the certificate files are replaced by one from a new CA (a rotation).
        new_ca = trustme.CA()
        new_ca_file = tmp_path / "new-ca.pem"
        new_ca.cert_pem.write_to_path(str(new_ca_file))
        rotated_cert, rotated_key = leaf_files(
            new_ca.issue_cert("localhost", "127.0.0.1"), tmp_path, "rotated"
        )
        live_key.write_bytes(rotated_key.read_bytes())
        live_cert.write_bytes(rotated_cert.read_bytes())
        stat = live_cert.stat()
        os.utime(live_cert, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        # Then: a new connection is served the new certificate (and the old CA fails it)
        async with client(app, new_ca_file, pki["ops"], pki["ops_key"]) as fresh:
            await fresh.submit("echo", {"n": 2})
        async with client(app, pki["ca"], pki["ops"], pki["ops_key"]) as stale:
            with pytest.raises(Unavailable):
                await stale.submit("echo", {"n": 3})
        # And the connection open before the rotation still works, without a restart.
        await connected.submit("echo", {"n": 4})
