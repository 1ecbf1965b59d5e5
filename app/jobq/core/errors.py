"""The domain's exception tree. Adapters translate driver errors into these at their edge.

JobqError
├── InvalidArgument        bad input; nothing was changed
├── NotFound
├── AlreadyExists          a queue that exists; an idempotency key with another payload
├── FailedPrecondition     the request is valid but the job's state forbids it
│   ├── StaleLease         fencing: the attempt named is not the job's current lease
│   └── IllegalTransition  the lifecycle table has no such edge
├── ResourceExhausted      a limit was hit
└── StoreUnavailable       the store cannot be reached; retrying may succeed
"""

from __future__ import annotations


class JobqError(Exception):
    """Base of every error jobq raises on purpose."""


class InvalidArgument(JobqError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(JobqError):
    pass


class AlreadyExists(JobqError):
    pass


class FailedPrecondition(JobqError):
    pass


class StaleLease(FailedPrecondition):
    """One or more job leases named by a worker are no longer its own.

    `stale` maps each job id to a sentence saying why. On the wire each is a
    google.rpc.PreconditionFailure violation of type VIOLATION_TYPE.
    """

    VIOLATION_TYPE = "STALE_LEASE"

    def __init__(self, stale: dict[str, str]) -> None:
        shown = list(stale.items())[:3]
        detail = "; ".join(f"{job_id}: {why}" for job_id, why in shown)
        more = f" (and {len(stale) - len(shown)} more)" if len(stale) > len(shown) else ""
        super().__init__(f"{len(stale)} stale lease(s), nothing changed: {detail}{more}")
        self.stale = stale


class IllegalTransition(FailedPrecondition):
    pass


class ResourceExhausted(JobqError):
    pass


class Unauthenticated(JobqError):
    pass


class PermissionDenied(JobqError):
    pass


class Unavailable(JobqError):
    pass


class StoreUnavailable(Unavailable):
    pass


class InternalError(JobqError):
    pass
