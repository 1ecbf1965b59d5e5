"""gRPC errors to jobq's exception tree, in one place, for the SDK, the worker and jq-ctl."""

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

_SIMPLE: dict[grpc.StatusCode, type[JobqError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


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
