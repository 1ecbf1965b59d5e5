"""Domain errors as the rich gRPC status the server sends (the table is jobq.wire.errors)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from jobq.core.errors import InvalidArgument, JobqError, StaleLease
from jobq.wire.errors import STATUS_BY_ERROR


def status_code_for(error: JobqError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return grpc.StatusCode.INTERNAL


# gRPC refuses trailers over 16 KiB (and may drop them over 8 KiB): a status names at most
# this many stale leases. A worker drops those, resends, and learns of the rest next time.
MAX_STALE_DETAILS = 25
MAX_MESSAGE = 1000


def rich_status(error: JobqError) -> grpc.Status:
    """The status for `error`, with google.rpc details a client can act on."""
    code = status_code_for(error)
    message = str(error)[:MAX_MESSAGE]
    details: list[any_pb2.Any] = []
    if isinstance(error, StaleLease):
        failure = error_details_pb2.PreconditionFailure(
            violations=[
                error_details_pb2.PreconditionFailure.Violation(
                    type=StaleLease.VIOLATION_TYPE, subject=job_id, description=why
                )
                for job_id, why in list(error.stale.items())[:MAX_STALE_DETAILS]
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(failure)
        details.append(packed)
    elif isinstance(error, InvalidArgument):
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=error.field, description=error.problem
                )
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    return rpc_status.to_status(
        status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    )
