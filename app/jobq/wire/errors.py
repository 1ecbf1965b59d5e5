"""Domain errors <-> gRPC status codes: one table, read one way by the server and the
other way by the SDK, the worker and jq-ctl."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from jobq.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    JobqError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StaleLease,
    Unauthenticated,
    Unavailable,
)

STATUS_BY_ERROR: dict[type[JobqError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


# The inverse, for a client; a deadline passed is, to a caller, a server not answering.
_SIMPLE: dict[grpc.StatusCode, type[JobqError]] = {
    code: cls for cls, code in STATUS_BY_ERROR.items() if code != grpc.StatusCode.INVALID_ARGUMENT
}
_SIMPLE[grpc.StatusCode.DEADLINE_EXCEEDED] = Unavailable


def from_rpc_error(error: grpc.RpcError) -> JobqError:
    """The JobqError a failed call stands for, with the server's details where it sent them."""
    # Both grpc.Call (sync stubs) and grpc.aio.AioRpcError carry code, details and trailers.
    is_call = callable(getattr(error, "code", None)) and callable(getattr(error, "details", None))
    code = error.code() if is_call else grpc.StatusCode.UNKNOWN
    message = (error.details() if is_call else str(error)) or code.name
    status = rpc_status.from_call(error) if is_call else None  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            stale = {
                v.subject: v.description
                for v in failure.violations
                if v.type == StaleLease.VIOLATION_TYPE
            }
            if stale:
                return StaleLease(stale)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            if bad.field_violations:
                violation = bad.field_violations[0]
                return InvalidArgument(violation.field, violation.description)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        field, _, problem = message.partition(": ")
        return InvalidArgument(field, problem) if problem else InvalidArgument("request", message)
    cls = _SIMPLE.get(code, InternalError)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        message = f"{code.name}: {message}"
    return cls(message)
