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


# What check_message does with a field, decided once per field descriptor: reading the
# descriptor's options and type and formatting the field's path for every field of every
# job cost SubmitBatch ~4 us a job (ADR 0023). The path is formatted only for an error.
_TRACE, _MAP, _TEXT, _MESSAGE, _OTHER = range(5)


def _plan(fd: FieldDescriptor) -> tuple[int, bool, int | None]:
    """(kind, repeated, the string bound from TEXT_MAX, None for none)."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return (_TRACE if fd.name == "trace_context" else _MAP), False, None
    if fd.type == FieldDescriptor.TYPE_STRING:
        return _TEXT, fd.is_repeated, bounds.TEXT_MAX[fd.name]
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return _MESSAGE, fd.is_repeated, None
    return _OTHER, fd.is_repeated, None


_PLANS: dict[FieldDescriptor, tuple[int, bool, int | None]] = {}


def check_message(message: Message, limits: bounds.Limits, path: str = "") -> None:
    for fd, value in message.ListFields():
        plan = _PLANS.get(fd)
        if plan is None:
            plan = _PLANS[fd] = _plan(fd)
        kind, repeated, bound = plan
        if kind == _TRACE:
            bounds.trace_context(dict(value), f"{path}{fd.name}")
        elif kind == _MAP:
            bounds.items(len(value), f"{path}{fd.name}", bounds.TRACE_CONTEXT_ENTRIES)
        elif repeated:
            if len(value) > limits.items_max(fd.name):
                bounds.items(len(value), f"{path}{fd.name}", limits.items_max(fd.name))
            if kind == _TEXT:
                for index, item in enumerate(value):
                    _check_text(item, bound, path, fd.name, index)
            elif kind == _MESSAGE:
                for index, item in enumerate(value):
                    check_message(item, limits, f"{path}{fd.name}[{index}].")
        elif kind == _TEXT:
            _check_text(value, bound, path, fd.name)
        elif kind == _MESSAGE:
            check_message(value, limits, f"{path}{fd.name}.")


def _check_text(value: str, bound: int | None, path: str, name: str, index: int = -1) -> None:
    """bounds.field_text, its error raised by bounds.text only once the value fails."""
    if bound is not None and (len(value) > bound or "\x00" in value):
        where = f"{path}{name}" if index < 0 else f"{path}{name}[{index}]"
        bounds.text(value, where, bound)


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
