"""jobq: a distributed job queue.

Usage::

    from jobq import Client, task

    @task("email.send", queue="emails", max_attempts=5, timeout="30s")
    async def send_email(payload, ctx): ...

    with Client() as client:  # JQ_SERVER_ADDRESS, else 127.0.0.1:50051
        job = client.submit("email.send", {"to": "a@b.c"}, idempotency_key="order-42")
"""

from jobq.client import NO_RETRY, AsyncClient, Client, Job, JobPage, RetryPolicy, Submitted
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
from jobq.core.model import QueueConfig, WorkerInfo
from jobq.core.states import JobState
from jobq.worker.context import JobContext
from jobq.worker.task import PermanentError, RetryLater, Task, task

__all__ = [
    "NO_RETRY",
    "AlreadyExists",
    "AsyncClient",
    "Client",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "Job",
    "JobContext",
    "JobPage",
    "JobState",
    "JobqError",
    "NotFound",
    "PermanentError",
    "PermissionDenied",
    "QueueConfig",
    "ResourceExhausted",
    "RetryLater",
    "RetryPolicy",
    "StaleLease",
    "Submitted",
    "Task",
    "Unauthenticated",
    "Unavailable",
    "WorkerInfo",
    "task",
]
