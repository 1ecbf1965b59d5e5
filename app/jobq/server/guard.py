"""Every jobq request decoded and bounded before a servicer sees it.

grpc.aio calls a method's request deserializer outside the handler: an exception there (a
malformed protobuf, invalid UTF-8 in a string field) ends the call UNKNOWN with no way to set
the status. So the deserializer here never raises; it hands the handler an Undecodable, which
the handler turns into INVALID_ARGUMENT. Then every string and repeated field of the request,
at any depth, is held to its bound in jobq.core.bounds: no field is forgotten, whichever RPC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from jobq.core import bounds
from jobq.core.errors import InvalidArgument
from jobq.server.rpc_context import Context, MethodHandler, ServerInterceptor, rewrapped

GUARDED_PREFIX = "/jobq.v1."


@dataclasses.dataclass(frozen=True, slots=True)
class Undecodable:
    """A request body that is not a valid message of the method's request type."""

    problem: str


def decoder(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, or whatever a generated parser raises
            return Undecodable(str(exc) or type(exc).__name__)

    return decode


def check_request(request: Any, limits: bounds.Limits) -> None:
    """Raise InvalidArgument if `request` is undecodable or a field is over its bound."""
    if isinstance(request, Undecodable):
        raise InvalidArgument(
            "request",
            "not a valid message (malformed protobuf or invalid UTF-8 in a string field): "
            + request.problem[:200],
        )
    check_message(request, limits)


def check_message(message: Message, limits: bounds.Limits, path: str = "") -> None:
    for fd, value in message.ListFields():
        where = f"{path}{fd.name}"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if fd.name == "trace_context":
                bounds.trace_context(dict(value), where)
            else:
                bounds.items(len(value), where, bounds.TRACE_CONTEXT_ENTRIES)
        elif fd.is_repeated:
            bounds.items(len(value), where, limits.items_max(fd.name))
            for index, item in enumerate(value):
                _check_one(fd, item, f"{where}[{index}]", limits)
        else:
            _check_one(fd, value, where, limits)


def _check_one(fd: FieldDescriptor, value: Any, where: str, limits: bounds.Limits) -> None:
    if fd.type == FieldDescriptor.TYPE_STRING:
        bounds.field_text(value, where, fd.name)
    elif fd.type == FieldDescriptor.TYPE_MESSAGE:
        check_message(value, limits, f"{where}.")


class RequestGuard(ServerInterceptor):
    """Decodes jobq requests without raising and checks their bounds, inside the handler, so
    the outer RpcInterceptor maps a rejection to INVALID_ARGUMENT like any other."""

    def __init__(self, limits: bounds.Limits) -> None:
        self._limits = limits

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if (
            handler is None
            or handler.request_deserializer is None
            or not details.method.startswith(GUARDED_PREFIX)
        ):
            return handler
        return rewrapped(handler, self._unary, self._stream, decoder(handler.request_deserializer))

    def _unary(self, behaviour: Callable[..., Any]) -> Callable[[Any, Context], Any]:
        async def call(request: Any, context: Context) -> Any:
            check_request(request, self._limits)
            return await behaviour(request, context)

        return call

    def _stream(self, behaviour: Callable[..., Any]) -> Callable[[Any, Context], Any]:
        async def call(request: Any, context: Context) -> AsyncIterator[Any]:
            check_request(request, self._limits)
            async for response in behaviour(request, context):
                yield response

        return call
