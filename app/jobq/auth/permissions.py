"""The one table from RPC to the role it needs. An RPC not listed is refused to everyone.

Roles do not imply one another: a key for an operator who also manages keys carries both
`operator` and `admin`. Health is open (probes carry no credential); reflection needs any
authenticated principal, since it reveals the API but no data.
"""

from __future__ import annotations

from typing import Final

from jobq.auth.principal import Role

OPEN_SERVICES: Final = frozenset({"grpc.health.v1.Health"})
AUTHENTICATED: Final = "authenticated"  # any valid principal, whatever its roles

_JOBS = "/jobq.v1.JobService/"
_WORKERS = "/jobq.v1.WorkerService/"
_ADMIN = "/jobq.v1.AdminService/"

REQUIRED: Final[dict[str, Role | str]] = {
    **{
        _JOBS + m: Role.SUBMITTER
        for m in ("Submit", "SubmitBatch", "GetJob", "ListJobs", "CancelJob", "WatchJob")
    },
    **{
        _WORKERS + m: Role.WORKER
        for m in (
            "RegisterWorker",
            "Heartbeat",
            "LeaseJobs",
            "ReportProgress",
            "CompleteJob",
            "FailJob",
            "ReportOutcomes",
            "ReleaseJobs",
            "DeregisterWorker",
        )
    },
    **{
        _ADMIN + m: Role.OPERATOR
        for m in (
            "CreateQueue",
            "UpdateQueue",
            "GetQueue",
            "ListQueues",
            "PauseQueue",
            "ResumeQueue",
            "PurgeQueue",
            "GetQueueStats",
            "ListWorkers",
            "DrainWorker",
            "ListDeadLetters",
            "ReplayDeadLetters",
            "DiscardDeadLetters",
            "GetClusterStats",
        )
    },
    **{_ADMIN + m: Role.ADMIN for m in ("CreateApiKey", "ListApiKeys", "RevokeApiKey")},
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": AUTHENTICATED,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": AUTHENTICATED,
}

# The calls that change nothing: a VIEWER may make these whatever role REQUIRED names (the
# console's read-only users; ADR 0013).
READ_ONLY: Final = frozenset(
    {_JOBS + m for m in ("GetJob", "ListJobs", "WatchJob")}
    | {
        _ADMIN + m
        for m in (
            "GetQueue",
            "ListQueues",
            "GetQueueStats",
            "ListWorkers",
            "ListDeadLetters",
            "GetClusterStats",
        )
    }
)

# Worker calls that name queues: a worker credential limited to some queues may name only
# those (the request field is `queues`; empty means the worker's registered queues).
QUEUE_SCOPED: Final = frozenset({_WORKERS + "RegisterWorker", _WORKERS + "LeaseJobs"})

# The calls whose every outcome is written to the audit log, not only refusals.
AUDITED: Final = frozenset(
    {
        _ADMIN + "PurgeQueue",
        _ADMIN + "DiscardDeadLetters",
        _ADMIN + "ReplayDeadLetters",
        _ADMIN + "DrainWorker",
        _ADMIN + "CreateApiKey",
        _ADMIN + "RevokeApiKey",
    }
)


def is_open(method: str) -> bool:
    return method.lstrip("/").rpartition("/")[0] in OPEN_SERVICES


def required(method: str) -> Role | str | None:
    """The role `method` needs, AUTHENTICATED, or None when nobody may call it."""
    return REQUIRED.get(method)
