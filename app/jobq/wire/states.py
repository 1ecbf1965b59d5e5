"""Job and worker states to their protobuf enums and back: the one table server, client,
worker and the events codec share."""

from __future__ import annotations

from jobq.core.model import WorkerState
from jobq.core.states import JobState
from jobq.v1 import job_pb2, worker_pb2

STATE_TO_PB: dict[JobState, job_pb2.JobState.ValueType] = {
    JobState.WAITING: job_pb2.JOB_STATE_WAITING,
    JobState.SCHEDULED: job_pb2.JOB_STATE_SCHEDULED,
    JobState.QUEUED: job_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: job_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: job_pb2.JOB_STATE_SUCCEEDED,
    JobState.DEAD: job_pb2.JOB_STATE_DEAD,
    JobState.CANCELLED: job_pb2.JOB_STATE_CANCELLED,
    JobState.EXPIRED: job_pb2.JOB_STATE_EXPIRED,
}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}

WORKER_STATE_TO_PB: dict[WorkerState, worker_pb2.WorkerState.ValueType] = {
    WorkerState.ACTIVE: worker_pb2.WORKER_STATE_ACTIVE,
    WorkerState.DRAINING: worker_pb2.WORKER_STATE_DRAINING,
    WorkerState.STOPPED: worker_pb2.WORKER_STATE_STOPPED,
    WorkerState.LOST: worker_pb2.WORKER_STATE_LOST,
}
WORKER_STATE_FROM_PB = {v: k for k, v in WORKER_STATE_TO_PB.items()}
