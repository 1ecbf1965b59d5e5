"""The context grpc.aio hands every servicer method and interceptor, typed once.

Our handlers serve messages of many types through one interceptor, so the request
and response type parameters stay open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import grpc.aio

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

Handler = Callable[[Any, Context], Any]
# A registered behaviour: grpc-stubs types RpcMethodHandler for the sync server, whose
# context differs from the grpc.aio one our handlers really receive.
Behaviour = Callable[..., Any]

# The stubs make these generic; at run time they cannot be subscripted.
if TYPE_CHECKING:
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    MethodHandler = grpc.RpcMethodHandler
    ServerInterceptor = grpc.aio.ServerInterceptor


def rewrapped(
    handler: MethodHandler,
    unary: Callable[[Behaviour], Handler],
    stream: Callable[[Behaviour], Handler],
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> MethodHandler:
    """`handler` with its unary or server-streaming behaviour wrapped (an interceptor's
    whole job); other kinds, which jobq does not serve, pass through unchanged."""
    deserializer = request_deserializer or handler.request_deserializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            unary(handler.unary_unary),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            stream(handler.unary_stream),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler
