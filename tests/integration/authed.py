"""Channels for tests that call the stubs directly: each call carries an API key."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from tests.auth_keys import EVERY_ROLE_KEY


class _Bearer:
    """Adds `authorization: Bearer <key>` to every call, as the SDK does."""

    def __init__(self, key: str) -> None:
        self._header = ("authorization", f"Bearer {key}")

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*tuple(details.metadata or ()), self._header)
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
        )


# grpc.aio files an interceptor under its first kind only: one class per kind.
class BearerUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class BearerStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class BearerBidi(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # reflection
    async def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(details), request_iterator)


def channel(address: str, key: str = EVERY_ROLE_KEY, **options: Any) -> grpc.aio.Channel:
    """A plaintext loopback channel whose calls run as `key` (default: every role)."""
    interceptors = [BearerUnary(key), BearerStream(key), BearerBidi(key)]
    return grpc.aio.insecure_channel(address, interceptors=interceptors, **options)
