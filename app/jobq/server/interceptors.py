"""Cross-cutting RPC concerns: correlation ids, traces, domain errors as status codes,
metrics, logs."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import grpc
import grpc.aio
from grpc.aio import AbortError
from opentelemetry import trace
from opentelemetry.context import Context as TraceContext

from jobq.core.errors import JobqError
from jobq.ids import new_id
from jobq.observability.context import CORRELATION_HEADER, correlation_id
from jobq.observability.metrics import ServerMetrics
from jobq.observability.tracing import NO_TRACER, extract_metadata
from jobq.server.errors import rich_status, status_code_for
from jobq.server.rpc_context import (
    Behaviour,
    Context,
    Handler,
    MethodHandler,
    ServerInterceptor,
    rewrapped,
)

log = logging.getLogger("jobq.rpc")


class RpcInterceptor(ServerInterceptor):
    """Wraps every handler: sets the correlation id, opens the call's server span (a child of
    the caller's `traceparent`), maps JobqError to a status, times the call."""

    def __init__(
        self,
        metrics: ServerMetrics,
        tracer: trace.Tracer = NO_TRACER,
        stream_send_timeout: float = 30.0,
    ) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self._send_timeout = stream_send_timeout

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> MethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        metadata = tuple(details.invocation_metadata or ())
        cid = str(dict(metadata).get(CORRELATION_HEADER) or new_id())
        parent = extract_metadata(metadata)
        return rewrapped(
            handler,
            lambda behaviour: self._unary(method, cid, parent, behaviour),
            lambda behaviour: self._stream(method, cid, parent, behaviour),
        )

    def _unary(self, method: str, cid: str, parent: TraceContext, behaviour: Behaviour) -> Handler:
        async def call(request: Any, context: Context) -> Any:
            correlation_id.set(cid)
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            with self._span(method, cid, parent) as span:
                try:
                    return await behaviour(request, context)
                except Exception as exc:
                    code = _code_for(exc, context)
                    _record(span, exc, code)
                    await _end_call(method, exc, code, context)
                finally:
                    self._observe(method, code, start, span)

        return call

    def _stream(self, method: str, cid: str, parent: TraceContext, behaviour: Behaviour) -> Handler:
        if not inspect.isasyncgenfunction(behaviour):
            return behaviour  # writes for itself (grpc health's Watch)

        async def call(request: Any, context: Context) -> None:
            correlation_id.set(cid)
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            with self._span(method, cid, parent) as span:
                try:
                    self._metrics.streams_open.inc()
                    async with contextlib.aclosing(behaviour(request, context)) as responses:
                        async for response in responses:
                            if not await self._send(context, response):
                                code = grpc.StatusCode.CANCELLED
                                self._metrics.streams_dropped.inc()
                                log.warning(
                                    "stream dropped: nothing read for JQ_STREAM_SEND_TIMEOUT",
                                    extra={"method": method},
                                )
                                # Cancelled, not aborted: a status would queue behind the
                                # message the reader does not take, and keep this task.
                                raise asyncio.CancelledError
                except Exception as exc:
                    code = _code_for(exc, context)
                    _record(span, exc, code)
                    await _end_call(method, exc, code, context)
                finally:
                    self._metrics.streams_open.dec()
                    self._observe(method, code, start, span)

        return call

    async def _send(self, context: Context, response: Any) -> bool:
        """Write one message; False when the reader took nothing for the send timeout.

        A reader that stops leaves each write waiting on HTTP/2 flow control; bounded, the
        stream's task ends and what it holds is freed instead of waiting for ever.
        """
        try:
            await asyncio.wait_for(context.write(response), self._send_timeout)
        except TimeoutError:
            return False
        return True

    def _span(
        self, method: str, cid: str, parent: TraceContext
    ) -> contextlib.AbstractContextManager[trace.Span]:
        service, _, name = method.lstrip("/").rpartition("/")
        return self._tracer.start_as_current_span(
            method.lstrip("/"),
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": name,
                "jobq.correlation_id": cid,
            },
            # The status is the gRPC code, set in _observe; AbortError is how a call ends.
            record_exception=False,
            set_status_on_exception=False,
        )

    def _observe(self, method: str, code: grpc.StatusCode, start: float, span: trace.Span) -> None:
        self._metrics.grpc_duration.labels(method, code.name).observe(time.perf_counter() - start)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_FAULTS:
            span.set_status(trace.StatusCode.ERROR, code.name)


# The codes OpenTelemetry's RPC conventions count as a server span's error; the others
# (INVALID_ARGUMENT, NOT_FOUND, ...) are the caller's doing.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _record(span: trace.Span, exc: Exception, code: grpc.StatusCode) -> None:
    if code in _SERVER_FAULTS and not isinstance(exc, AbortError):
        span.record_exception(exc)


def _code_for(exc: Exception, context: Context) -> grpc.StatusCode:
    if isinstance(exc, AbortError):
        return context.code() or grpc.StatusCode.UNKNOWN
    if isinstance(exc, JobqError):
        return status_code_for(exc)
    if isinstance(exc, NotImplementedError):  # generated base servicers for unbuilt methods
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.INTERNAL


async def _end_call(
    method: str, exc: Exception, code: grpc.StatusCode, context: Context
) -> NoReturn:
    """Ends the call with the status for `exc`: a domain error's code, else INTERNAL."""
    if isinstance(exc, AbortError):
        raise exc
    if isinstance(exc, JobqError):
        log.info("rpc rejected", extra={"method": method, "code": code.name, "error": str(exc)})
        status = rich_status(exc)
        # What grpc.aio's abort_with_status does, which its stubs do not declare.
        await context.abort(status.code, status.details, status.trailing_metadata)
    if code is grpc.StatusCode.UNIMPLEMENTED:
        await context.abort(code, f"{method} is not implemented by this server")
    log.error("rpc failed", exc_info=exc, extra={"method": method})
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error (correlation id {correlation_id.get()})"
    )
