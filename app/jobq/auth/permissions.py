"""The one table from RPC to the role it needs. An RPC not listed is refused to everyone.

Roles do not imply one another: a key for an operator who also manages keys carries both
`operator` and `admin`. A row may name a set of roles, any one of which will do. Health is
open (probes carry no credential); reflection needs any authenticated principal, since it
reveals the API but no data.
"""

from __future__ import annotations

from typing import Final

from jobq.auth.principal import Role

OPEN_SERVICES: Final = frozenset({"grpc.health.v1.Health"})
AUTHENTICATED: Final = "authenticated"  # any valid principal, whatever its roles

_JOBS = "/jobq.v1.JobService/"
_WORKERS = "/jobq.v1.WorkerService/"
_ADMIN = "/jobq.v1.AdminService/"
_SCHEDULES = "/jobq.v1.ScheduleService/"
_WORKFLOWS = "/jobq.v1.WorkflowService/"

ANY_OF_OPERATOR_ADMIN: Final = frozenset({Role.OPERATOR, Role.ADMIN})

REQUIRED: Final[dict[str, Role | frozenset[Role] | str]] = {
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
    # Schedules submit jobs on their own for as long as they exist: managing them is an
    # operator's job, like queues, and an admin's, who answers for the tenant (ADR 0014). A
    # submitter may submit a job, not set up a stream of them.
    **{
        _SCHEDULES + m: ANY_OF_OPERATOR_ADMIN
        for m in (
            "CreateSchedule",
            "UpdateSchedule",
            "GetSchedule",
            "ListSchedules",
            "PauseSchedule",
            "ResumeSchedule",
            "DeleteSchedule",
            "TriggerSchedule",
        )
    },
    # A workflow is a batch of jobs with edges: whoever may submit and cancel jobs may submit
    # and cancel one (ADR 0016).
    **{
        _WORKFLOWS + m: Role.SUBMITTER
        for m in ("SubmitWorkflow", "GetWorkflow", "WatchWorkflow", "CancelWorkflow")
    },
    _WORKFLOWS + "GetParentResults": Role.WORKER,  # for a job the worker holds
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": AUTHENTICATED,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": AUTHENTICATED,
}

# The calls that change nothing: a VIEWER may make these whatever role REQUIRED names (the
# console's read-only users; ADR 0013).
READ_ONLY: Final = frozenset(
    {_JOBS + m for m in ("GetJob", "ListJobs", "WatchJob")}
    | {_WORKFLOWS + m for m in ("GetWorkflow", "WatchWorkflow")}
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
    | {_SCHEDULES + m for m in ("GetSchedule", "ListSchedules")}
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
        _SCHEDULES + "CreateSchedule",
        _SCHEDULES + "UpdateSchedule",
        _SCHEDULES + "DeleteSchedule",
        _SCHEDULES + "TriggerSchedule",
    }
)


def is_open(method: str) -> bool:
    return method.lstrip("/").rpartition("/")[0] in OPEN_SERVICES


def required(method: str) -> Role | frozenset[Role] | str | None:
    """The role `method` needs (or the roles, any of which will do), AUTHENTICATED, or None
    when nobody may call it."""
    return REQUIRED.get(method)
