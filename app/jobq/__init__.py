"""jobq: a distributed job queue.

Usage::

    from jobq import Client, task

    @task("email.send", queue="emails", max_attempts=5, timeout="30s")
    async def send_email(payload, ctx): ...

    with Client("localhost:50051") as client:
        job = client.submit("email.send", {"to": "a@b.c"}, idempotency_key="order-42")
"""

from jobq.client import AsyncClient, Client, JobPage, Submitted
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
from jobq.core.model import Job, QueueConfig, WorkerInfo
from jobq.core.states import JobState
from jobq.worker.context import JobContext
from jobq.worker.task import PermanentError, RetryLater, Task, task

__all__ = [
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
    "StaleLease",
    "Submitted",
    "Task",
    "Unauthenticated",
    "Unavailable",
    "WorkerInfo",
    "task",
]
