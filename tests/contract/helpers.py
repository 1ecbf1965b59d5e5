"""Building blocks for the contract tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobq.core.clock import FixedClock
from jobq.core.model import Job, LeaseRef, NewJob, WorkerInfo, WorkerState
from jobq.core.validation import JobSpec, Limits, validate_job
from jobq.ids import new_id
from jobq.store.base import Store


def new_job(clock: FixedClock, type: str = "echo", **fields: Any) -> NewJob:
    return validate_job(
        JobSpec(type=type, **fields), now=clock.now(), limits=Limits(), new_id=new_id
    )


async def submit(store: Store, clock: FixedClock, type: str = "echo", **fields: Any) -> Job:
    (result,) = await store.jobs.submit([new_job(clock, type, **fields)], clock.now())
    return result.job


async def register(
    store: Store, clock: FixedClock, worker_id: str = "w1", queues: tuple[str, ...] = ("default",)
) -> str:
    await store.workers.register(
        WorkerInfo(
            id=worker_id,
            hostname="test",
            queues=queues,
            capacity=10,
            state=WorkerState.ACTIVE,
            started_at=clock.now(),
            last_heartbeat=clock.now(),
        )
    )
    return worker_id


def lease_of(job: Job) -> LeaseRef:
    return LeaseRef(job.id, job.attempt)


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)
