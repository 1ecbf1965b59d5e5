"""The one seam through which tenancy tests get a caller's identity: (tenant, roles, subject).

Real authentication: the server verifies JWTs against a JWKS file written here, and every
call of a `caller_channel` carries a token signed for its (tenant, roles, subject), which the
authentication interceptor turns into the principal the services scope by.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from jobq.auth.principal import Role
from jobq.server.app import ServerApp
from tests.integration.backends import running
from tests.integration.test_auth_matrix import AUDIENCE, ISSUER, Signer

ALL_ROLES = frozenset(Role)
_SIGNER = Signer("tenancy-tests")


@contextlib.asynccontextmanager
async def tenancy_server(url: str, **overrides: Any) -> AsyncIterator[ServerApp]:
    """A server (idle background loops, see backends.running) that accepts the JWTs that
    `caller_channel` signs."""
    with tempfile.TemporaryDirectory(prefix="jq-tenancy-") as tmp:
        jwks = Path(tmp) / "jwks.json"
        jwks.write_text(json.dumps({"keys": [_SIGNER.jwk()]}))
        settings = {
            "auth_jwt_jwks": str(jwks),
            "auth_jwt_issuer": ISSUER,
            "auth_jwt_audience": AUDIENCE,
        } | overrides
        async with running(url, **settings) as app:
            yield app


def _with_identity(details: grpc.aio.ClientCallDetails, value: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# One class per call kind: a channel files each interceptor under the first kind it is.
class _UnaryIdentity(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self._value = value

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_identity(details, self._value), request)


class _StreamIdentity(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, value: str) -> None:
        self._value = value

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_identity(details, self._value), request)


def caller_channel(
    server: ServerApp,
    tenant: str,
    roles: Iterable[Role] = ALL_ROLES,
    subject: str | None = None,
) -> grpc.aio.Channel:
    """A channel whose every call is made as (tenant, roles, subject); close it when done.

    `subject` defaults to one per tenant ("<tenant>-caller")."""
    token = _SIGNER.token(
        tenant=tenant, roles=sorted(r.value for r in roles), sub=subject or f"{tenant}-caller"
    )
    value = f"Bearer {token}"
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{server.grpc_port}",
        interceptors=[_UnaryIdentity(value), _StreamIdentity(value)],
    )
