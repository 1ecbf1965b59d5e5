"""Every RPC in the protos by every bad credential, over real gRPC: UNAUTHENTICATED for a
missing or bad one, PERMISSION_DENIED for a valid one without the role, and no row changed.

Given a server with bootstrap keys, stored keys (one revoked, one expired) and a JWKS file;
when each RPC is called with each credential; then the code is the one the issue names and
a snapshot of every table is the same afterwards.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor

from jobq.auth import permissions
from jobq.auth.keys import ApiKey, hash_secret, new_key
from jobq.auth.permissions import required
from jobq.auth.principal import Role
from jobq.client import AsyncClient
from jobq.server.app import ServerApp
from jobq.v1 import (
    admin_service_pb2,
    job_service_pb2,
    schedule_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)
from tests.auth_keys import OWNER_KEY, SUBMITTER_KEY, WORKER_KEY
from tests.integration import authed
from tests.integration.backends import running

ISSUER = "https://issuer.test/"
AUDIENCE = "jobq"
KID = "key-1"
SERVICES = (
    (job_service_pb2, "JobService"),
    (worker_service_pb2, "WorkerService"),
    (admin_service_pb2, "AdminService"),
    (schedule_service_pb2, "ScheduleService"),
    (workflow_service_pb2, "WorkflowService"),
)
NOT_DATA = {"store_probe", "sqlite_sequence"}  # readiness rewrites the probe row


def rpcs() -> Iterator[tuple[str, MethodDescriptor]]:
    for module, name in SERVICES:
        service = module.DESCRIPTOR.services_by_name[name]
        for method in service.methods:
            yield f"/{service.full_name}/{method.name}", method


RPCS = list(rpcs())


class Signer:
    """An RSA key pair whose public half is in the server's JWKS file."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
        )
        return jwk | {"kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "svc-reporting",
            "exp": now + 300,
            "iat": now,
            "tenant": "*",
            "roles": ["submitter"],
        } | claims
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def claims(**more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 300, "tenant": "*",
            "roles": ["submitter", "worker", "operator", "admin"]} | more  # fmt: skip


def hs256_with_public_key(signer: Signer) -> str:
    """The classic confusion attack: HMAC "signed" with the RSA public key as the secret."""
    head = unsigned({"alg": "HS256", "typ": "JWT", "kid": signer.kid}, claims())
    mac = hmac.new(signer.public_pem, head.encode(), hashlib.sha256).digest()
    return f"{head}.{b64(mac)}"


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    signer = Signer(KID)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [signer.jwk()]}))
    url = f"sqlite:///{tmp_path}/jobq.db"
    async with running(
        url,
        auth_jwt_jwks=str(jwks),
        auth_jwt_issuer=ISSUER,
        auth_jwt_audience=AUDIENCE,
        auth_jwt_leeway=dt.timedelta(seconds=5),
    ) as app:
        now = app.service.clock.now()
        revoked_id, revoked_secret, revoked = new_key()
        expired_id, expired_secret, expired = new_key()
        for key_id, secret, expires in (
            (revoked_id, revoked_secret, None),
            (expired_id, expired_secret, now - dt.timedelta(seconds=1)),
        ):
            await app.store.api_keys.create(
                ApiKey(
                    id=key_id,
                    secret_sha256=hash_secret(secret),
                    tenant="*",
                    roles=frozenset(Role),
                    created_at=now - dt.timedelta(days=1),
                    expires_at=expires,
                )
            )
        await app.store.api_keys.revoke(revoked_id, now)
        # Rows a changed call would touch: a queue, a job, a worker.
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as owner:
            await owner.create_queue("matrix")
            await owner.submit("echo", {}, queue="matrix")
        async with authed.channel(f"127.0.0.1:{app.grpc_port}", WORKER_KEY) as channel:
            await channel.unary_unary(
                "/jobq.v1.WorkerService/RegisterWorker",
                request_serializer=worker_service_pb2.RegisterWorkerRequest.SerializeToString,
                response_deserializer=worker_service_pb2.RegisterWorkerResponse.FromString,
            )(worker_service_pb2.RegisterWorkerRequest(hostname="h", queues=["matrix"], capacity=1))
        yield {
            "app": app,
            "db": tmp_path / "jobq.db",
            "signer": signer,
            "revoked": revoked,
            "expired": expired,
        }


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if r[0] not in NOT_DATA and not r[0].startswith("_yoyo") and r[0] != "yoyo_lock"
        ]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def bearer(credential: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {credential}")]


def credentials(setup: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    signer: Signer = setup["signer"]
    stranger = Signer(KID)  # the same kid, another key: a forged signature
    other_kid = Signer("key-unknown")
    now = int(time.time())
    return {
        "no credential": [],
        "malformed header": [("authorization", "Basic dXNlcjpwYXNz")],
        "bearer without a credential": [("authorization", "Bearer ")],
        "malformed key": bearer("jq_nothex_short"),
        "unknown key": bearer(new_key()[2]),
        "wrong secret": bearer(SUBMITTER_KEY[:-4] + "xxxx"),
        "revoked key": bearer(setup["revoked"]),
        "expired key": bearer(setup["expired"]),
        "JWT expired": bearer(signer.token(exp=now - 60, iat=now - 120)),
        "JWT wrong issuer": bearer(signer.token(iss="https://evil.test/")),
        "JWT wrong audience": bearer(signer.token(aud="not-jobq")),
        "JWT alg none": bearer(unsigned({"alg": "none", "typ": "JWT"}, claims()) + "."),
        "JWT HS256 with the RSA public key": bearer(hs256_with_public_key(signer)),
        "JWT unknown kid": bearer(other_kid.token()),
        "JWT forged signature": bearer(stranger.token()),
        "JWT without kid": bearer(
            jwt.encode(claims(), signer.private, algorithm="RS256")  # no kid header
        ),
    }


async def call(
    channel: grpc.aio.Channel, method: str, desc: MethodDescriptor, metadata: list[Any]
) -> grpc.StatusCode:
    request = message_factory.GetMessageClass(desc.input_type)()
    try:
        if desc.server_streaming:
            stream = channel.unary_stream(
                method,
                request_serializer=type(request).SerializeToString,
                response_deserializer=lambda b: b,
            )(request, metadata=metadata, timeout=10)
            async for _ in stream:
                break
        else:
            await channel.unary_unary(
                method,
                request_serializer=type(request).SerializeToString,
                response_deserializer=lambda b: b,
            )(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_every_rpc_refuses_every_bad_credential_and_changes_nothing(
    setup: dict[str, Any],
) -> None:
    app: ServerApp = setup["app"]
    before = snapshot(setup["db"])
    wrong: dict[tuple[str, str], grpc.StatusCode] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        for case, metadata in credentials(setup).items():
            for method, desc in RPCS:
                code = await call(channel, method, desc, metadata)
                if code is not grpc.StatusCode.UNAUTHENTICATED:
                    wrong[(case, method)] = code
    assert wrong == {}
    assert snapshot(setup["db"]) == before


async def test_a_valid_credential_without_the_role_is_permission_denied(
    setup: dict[str, Any],
) -> None:
    app: ServerApp = setup["app"]
    signer: Signer = setup["signer"]
    before = snapshot(setup["db"])
    wrong: dict[tuple[str, str], grpc.StatusCode] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        for method, desc in RPCS:
            need = required(method)
            # A key and a token that carry every role but the one this RPC needs (and but
            # viewer for a read-only call, which a viewer may make: ADR 0013).
            needs = need if isinstance(need, frozenset) else {need}
            reads = method in permissions.READ_ONLY
            others = sorted(
                r.value for r in Role if r not in needs and not (reads and r is Role.VIEWER)
            )
            key = SUBMITTER_KEY if Role.SUBMITTER not in needs else WORKER_KEY
            token = signer.token(roles=others)
            for case, metadata in (("key", bearer(key)), ("jwt", bearer(token))):
                code = await call(channel, method, desc, metadata)
                if code is not grpc.StatusCode.PERMISSION_DENIED:
                    wrong[(case, method)] = code
    assert wrong == {}
    assert snapshot(setup["db"]) == before


async def test_a_valid_jwt_with_the_role_is_let_through(setup: dict[str, Any]) -> None:
    app: ServerApp = setup["app"]
    token = setup["signer"].token(roles=["submitter"])
    async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=token) as client:
        job = await client.submit("echo", {"via": "jwt"}, queue="matrix")
        assert (await client.get(job.id)).id == job.id


async def test_health_is_open_and_reflection_needs_a_principal(setup: dict[str, Any]) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    app: ServerApp = setup["app"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                ask()
            ):
                pass
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
