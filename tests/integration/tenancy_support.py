"""The one seam through which tenancy tests get a caller's identity: (tenant, roles, subject).

Until the authentication interceptor is on this branch, a test-only server interceptor sets
`current_principal` from call metadata that `caller_channel` attaches to every call. Only
this file knows how: when real credentials land, `tenancy_server` and `caller_channel` turn
into "a server with authentication on" and "a channel carrying an API key for (tenant,
roles, subject)", and every test that uses them runs unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
import grpc.aio

from jobq.auth.principal import Principal, Role, current_principal
from jobq.server.app import ServerApp
from jobq.server.rpc_context import (
    Behaviour,
    Context,
    Handler,
    MethodHandler,
    ServerInterceptor,
    rewrapped,
)
from tests.integration.backends import running

_HEADER = "x-jobq-test-principal"  # "tenant;role,role;subject": test servers only
ALL_ROLES = frozenset(Role)


class _PrincipalFromMetadata(ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        value = dict(details.invocation_metadata or ()).get(_HEADER)
        if value is None:
            return handler
        tenant, roles, subject = str(value).split(";")
        principal = Principal(
            subject=subject,
            tenant=tenant,
            roles=frozenset(Role(r) for r in roles.split(",") if r),
            via="test",
        )

        def unary(behaviour: Behaviour) -> Handler:
            async def call(request: Any, context: Context) -> Any:
                token = current_principal.set(principal)
                try:
                    return await behaviour(request, context)
                finally:
                    with contextlib.suppress(ValueError):  # reset from another context
                        current_principal.reset(token)

            return call

        def stream(behaviour: Behaviour) -> Handler:
            async def call(request: Any, context: Context) -> Any:
                token = current_principal.set(principal)
                try:
                    async for message in behaviour(request, context):
                        yield message
                finally:
                    with contextlib.suppress(ValueError):  # closed from another context
                        current_principal.reset(token)

            return call

        return rewrapped(handler, unary, stream)


@contextlib.asynccontextmanager
async def tenancy_server(url: str, **overrides: Any) -> AsyncIterator[ServerApp]:
    """A server (idle background loops, see backends.running) that knows who calls."""
    async with running(url, interceptors=[_PrincipalFromMetadata()], **overrides) as app:
        yield app


def _with_identity(details: grpc.aio.ClientCallDetails, value: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add(_HEADER, value)
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
    value = ";".join(
        (tenant, ",".join(sorted(r.value for r in roles)), subject or f"{tenant}-caller")
    )
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{server.grpc_port}",
        interceptors=[_UnaryIdentity(value), _StreamIdentity(value)],
    )
