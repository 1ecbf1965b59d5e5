"""The worker daemon: lease jobs in batches, run them, heartbeat, report outcomes in batches.

One heartbeat covers every lease the worker holds; outcomes are acknowledged many per call.
A lease is held from LeaseJobs until the server acknowledges its outcome, so heartbeats
keep it alive while the outcome waits to be sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace

from jobq.core.errors import FailedPrecondition, InvalidArgument, JobqError, StaleLease, Unavailable
from jobq.core.model import Job, LeaseRef, Outcome, OutcomeKind
from jobq.observability import tracing
from jobq.observability.context import correlation_id
from jobq.observability.worker_metrics import WorkerMetrics
from jobq.worker.connection import WorkerConnection
from jobq.worker.context import JobContext
from jobq.worker.task import PermanentError, RetryLater, Task

log = logging.getLogger("jobq.worker")

REPORT_BATCH = 500
PROGRESS_EVERY = 0.5
CANCEL_GRACE = 5.0
MAX_HEARTBEAT_ROUNDS = 100  # an async task that ignores ctx.cancelled is interrupted after this


@dataclasses.dataclass
class WorkerOptions:
    queues: Sequence[str]
    concurrency: int = 10
    grace_period: dt.timedelta = dt.timedelta(seconds=30)
    lease_wait: dt.timedelta = dt.timedelta(seconds=5)
    report_interval: dt.timedelta = dt.timedelta(milliseconds=20)
    worker_id: str = ""


@dataclasses.dataclass(eq=False)
class Running:
    job: Job
    ctx: JobContext
    task: asyncio.Task[None] | None = None
    lost: bool = False  # the lease is gone: drop the outcome
    released: bool = False  # given back on drain: drop the outcome

    @property
    def lease(self) -> LeaseRef:
        return LeaseRef(self.job.id, self.job.attempt)


class Worker:
    def __init__(
        self,
        connection: WorkerConnection,
        tasks: Mapping[str, Task],
        options: WorkerOptions,
        metrics: WorkerMetrics | None = None,
        tracer: trace.Tracer = tracing.NO_TRACER,
    ) -> None:
        self._conn = connection
        self._tasks = dict(tasks)
        self._opts = options
        self._metrics = metrics or WorkerMetrics()
        self._tracer = tracer
        self._held: dict[str, Running] = {}
        self._executing = 0
        self._slot_freed = asyncio.Event()
        self._outbox: list[Outcome] = []
        self._outbox_ready = asyncio.Event()
        self._progress: dict[str, tuple[float, str]] = {}
        self._stop = asyncio.Event()
        self._force = False
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="jobq-task"
        )
        self.registered = asyncio.Event()
        self._metrics.capacity.set(options.concurrency)

    @property
    def in_flight(self) -> int:
        return len(self._held)

    def stop(self, force: bool = False) -> None:
        """Begin draining; `force` skips the grace period."""
        self._force = self._force or force
        self._stop.set()
        self._slot_freed.set()

    async def run(self) -> None:
        interval = await self._register()
        loops = [
            asyncio.create_task(self._heartbeat_loop(interval)),
            asyncio.create_task(self._report_loop()),
            asyncio.create_task(self._progress_loop()),
        ]
        try:
            await self._lease_loop()
            await self._drain()
        finally:
            for loop in loops:
                loop.cancel()
            for loop in loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            with contextlib.suppress(JobqError):
                await self._conn.deregister()
            self._pool.shutdown(wait=False, cancel_futures=True)
        log.info("worker stopped", extra={"worker_id": self._conn.worker_id})

    async def _register(self) -> dt.timedelta:
        delay = 0.2
        while True:
            try:
                interval = await self._conn.register(
                    self._opts.worker_id or self._conn.worker_id,
                    self._opts.queues,
                    self._opts.concurrency,
                    sorted(self._tasks),
                )
            except Unavailable as exc:
                if self._stop.is_set():
                    raise
                log.warning("server unavailable, retrying registration: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.registered.set()
            log.info(
                "worker registered",
                extra={
                    "worker_id": self._conn.worker_id,
                    "queues": list(self._opts.queues),
                    "tasks": sorted(self._tasks),
                },
            )
            return interval

    # --- leasing and running ------------------------------------------------------------

    async def _lease_loop(self) -> None:
        delay = 0.2
        while not self._stop.is_set():
            free = self._opts.concurrency - self._executing
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            try:
                # Not cancelled on stop: a lease granted mid-shutdown must be seen, to be
                # released, rather than left RUNNING until its lease expires.
                jobs = await self._conn.lease(
                    self._opts.queues, free, self._opts.lease_wait, sorted(self._tasks)
                )
            except Unavailable as exc:
                log.warning("lease failed, server unavailable: %s", exc)
                await self._sleep_unless_stopped(delay)
                delay = min(delay * 2, 5.0)
                continue
            except FailedPrecondition:
                log.warning("server forgot this worker; registering again")
                await self._register()
                continue
            except JobqError as exc:  # anything else: say so, back off, keep the worker up
                log.error("lease failed: %s: %s", type(exc).__name__, exc)
                await self._sleep_unless_stopped(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            if self._stop.is_set():
                if jobs:
                    await self._give_back([LeaseRef(j.id, j.attempt) for j in jobs])
                return
            for job in jobs:
                self._start(job)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _start(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        ctx = JobContext(
            job.id,
            job.type,
            job.queue,
            job.attempt,
            job.correlation_id,
            functools.partial(self._record_progress, job.id),
            loop,
        )
        running = Running(job, ctx)
        self._held[job.id] = running
        self._executing += 1
        self._metrics.in_flight.set(self._executing)
        running.task = asyncio.create_task(self._execute(running))

    async def _execute(self, running: Running) -> None:
        job = running.job
        # Its own asyncio task, so these hold for this job's log lines and spans only.
        correlation_id.set(job.correlation_id)
        # A child of the context stored at submit: the execution joins the submitter's trace.
        with self._tracer.start_as_current_span(
            f"run {job.type}",
            context=tracing.extract(job.trace_context),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "jobq.job.id": job.id,
                "jobq.job.type": job.type,
                "jobq.job.queue": job.queue,
                "jobq.job.attempt": job.attempt,
                "jobq.correlation_id": job.correlation_id,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            outcome = await self._outcome_of(running)
            span.set_attribute("jobq.outcome", outcome.kind.value)
            if outcome.kind is OutcomeKind.FAILED:
                span.set_status(trace.StatusCode.ERROR, outcome.error)
        if not (running.lost or running.released):
            self._outbox.append(outcome)
            self._outbox_ready.set()

    async def _outcome_of(self, running: Running) -> Outcome:
        job, ctx = running.job, running.ctx
        task = self._tasks.get(job.type)
        started = time.perf_counter()
        outcome: Outcome
        try:
            if task is None:
                raise PermanentError(f"this worker has no task named {job.type!r}")
            result = await self._invoke(task, job, ctx)
            if ctx.cancelled:
                outcome = Outcome(running.lease, OutcomeKind.CANCELLED)
            else:
                outcome = Outcome(running.lease, OutcomeKind.COMPLETED, result=_to_json(result))
        except asyncio.CancelledError:
            if running.lost or running.released or not ctx.cancelled:
                raise
            outcome = Outcome(running.lease, OutcomeKind.CANCELLED)
        except TimeoutError:
            limit = job.timeout or (task.timeout if task else None)
            outcome = _failure(running.lease, f"timed out after {limit}", retryable=True)
        except PermanentError as exc:
            outcome = _failure(running.lease, f"PermanentError: {exc}", retryable=False)
        except RetryLater as exc:
            outcome = _failure(
                running.lease, f"RetryLater: {exc}", retryable=True, retry_after=exc.delay
            )
        except Exception as exc:
            log.warning("task %s failed: %r", job.type, exc, extra={"job_id": job.id})
            outcome = _failure(running.lease, f"{type(exc).__name__}: {exc}", retryable=True)
        finally:
            self._executing -= 1
            self._metrics.in_flight.set(self._executing)
            self._slot_freed.set()
        self._metrics.processing.labels(job.queue, job.type, outcome.kind.value).observe(
            time.perf_counter() - started
        )
        return outcome

    async def _invoke(self, task: Task, job: Job, ctx: JobContext) -> Any:
        payload = json.loads(job.payload) if job.payload else None
        args = (payload, ctx) if task.takes_context else (payload,)
        limit = job.timeout or task.timeout
        seconds = limit.total_seconds() if limit else None
        if task.is_async:
            return await asyncio.wait_for(task.fn(*args), seconds)
        loop = asyncio.get_running_loop()
        # The thread runs in a copy of this context: the task's log lines keep the job's
        # correlation id and its spans the job's trace.
        run = functools.partial(contextvars.copy_context().run, task.fn, *args)
        future = loop.run_in_executor(self._pool, run)
        # A sync task cannot be interrupted; on timeout its thread runs on, its result unused.
        return await asyncio.wait_for(asyncio.shield(future), seconds)

    # --- heartbeats, cancellation, lost leases ----------------------------------------------

    async def _heartbeat_loop(self, interval: dt.timedelta) -> None:
        while True:
            await asyncio.sleep(interval.total_seconds())
            await self._heartbeat()

    async def _heartbeat(self) -> None:
        # A rejection names at most a few dozen stale leases; keep going until the rest
        # are extended (bounded, in case the server keeps finding new ones).
        for _ in range(MAX_HEARTBEAT_ROUNDS):
            try:
                response = await self._conn.heartbeat([r.lease for r in self._held.values()])
            except StaleLease as exc:
                self._lose(exc.stale)
                continue  # the rest of the leases still need their heartbeat
            except Unavailable as exc:
                log.warning("heartbeat failed: %s", exc)
                return
            except FailedPrecondition:
                log.warning("server forgot this worker; registering again")
                await self._register()
                return
            except JobqError as exc:
                log.error("heartbeat failed: %s: %s", type(exc).__name__, exc)
                return
            for job_id in response.cancel_job_ids:
                self._request_cancel(job_id)
            if response.drain and not self._stop.is_set():
                log.info("drain requested by an operator")
                self.stop()
            return

    def _request_cancel(self, job_id: str) -> None:
        running = self._held.get(job_id)
        if running is None or running.ctx.cancelled:
            return
        log.info("cancellation requested", extra={"job_id": job_id})
        running.ctx._cancel()
        if running.task is not None and not running.task.done():
            asyncio.get_running_loop().call_later(CANCEL_GRACE, _cancel_if_running, running)

    def _lose(self, stale: Mapping[str, str]) -> None:
        for job_id, why in stale.items():
            running = self._held.pop(job_id, None)
            if running is None:
                continue
            log.warning("lease lost: %s", why, extra={"job_id": job_id})
            running.lost = True
            running.ctx._cancel()
            if running.task is not None and not running.task.done():
                running.task.cancel()

    # --- progress -------------------------------------------------------------------------

    def _record_progress(self, job_id: str, fraction: float, message: str) -> None:
        if job_id in self._held:
            self._progress[job_id] = (fraction, message)

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            pending, self._progress = self._progress, {}
            for job_id, (fraction, message) in pending.items():
                running = self._held.get(job_id)
                if running is None:
                    continue
                try:
                    if await self._conn.progress(running.lease, fraction, message):
                        self._request_cancel(job_id)
                except StaleLease as exc:
                    self._lose(exc.stale)
                except JobqError as exc:
                    log.warning("progress report failed: %s: %s", type(exc).__name__, exc)

    # --- outcomes ---------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        delay = 0.2
        while True:
            await self._outbox_ready.wait()
            await asyncio.sleep(self._opts.report_interval.total_seconds())
            batch = self._outbox[:REPORT_BATCH]
            try:
                await self._conn.report(batch)
            except StaleLease as exc:
                self._lose(exc.stale)
                self._outbox = [o for o in self._outbox if o.lease.job_id not in exc.stale]
                continue
            except InvalidArgument as exc:
                self._reject(batch, exc)
                continue
            except JobqError as exc:  # unavailable, or anything unexpected: keep and retry
                log.warning(
                    "reporting outcomes failed, will retry: %s: %s", type(exc).__name__, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.2
            del self._outbox[: len(batch)]
            for outcome in batch:
                self._held.pop(outcome.lease.job_id, None)
            if not self._outbox:
                self._outbox_ready.clear()

    def _reject(self, batch: list[Outcome], exc: InvalidArgument) -> None:
        """The server refused one outcome (say a result over the size limit): fail that job."""
        index = _index_in(exc.field)
        if index is None or index >= len(batch):
            log.error("outcomes rejected, dropping batch: %s", exc)
            for outcome in batch:
                self._held.pop(outcome.lease.job_id, None)
            del self._outbox[: len(batch)]
            return
        bad = batch[index]
        self._outbox[index] = _failure(bad.lease, f"result rejected: {exc}", retryable=False)

    # --- drain ------------------------------------------------------------------------------

    async def _drain(self) -> None:
        grace = 0.0 if self._force else self._opts.grace_period.total_seconds()
        deadline = time.monotonic() + grace
        while self._executing and time.monotonic() < deadline and not self._force:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), deadline - time.monotonic())
        unfinished = [r for r in self._held.values() if r.task is not None and not r.task.done()]
        if unfinished:
            log.warning("grace period over: releasing %d jobs", len(unfinished))
            await self._release(unfinished)
        await self._flush_outcomes(timeout=10.0)

    async def _release(self, runs: list[Running]) -> None:
        for running in runs:
            running.released = True
            running.ctx._cancel()
            if running.task is not None and not running.task.done():
                running.task.cancel()
            self._held.pop(running.job.id, None)
        await self._give_back([r.lease for r in runs])

    async def _give_back(self, leases: list[LeaseRef]) -> None:
        try:
            await self._conn.release(leases)
        except JobqError as exc:
            log.error("could not release leases; they will expire: %s", exc)

    # Shutdown's last step: give the reporter until the deadline, then log what is left.
    async def _flush_outcomes(self, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while self._outbox and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self._outbox:
            log.error("%d outcomes not reported; their jobs will run again", len(self._outbox))


def _cancel_if_running(running: Running) -> None:
    if running.task is not None and not running.task.done():
        running.task.cancel()


def _failure(
    lease: LeaseRef, error: str, *, retryable: bool, retry_after: dt.timedelta | None = None
) -> Outcome:
    return Outcome(
        lease, OutcomeKind.FAILED, error=error[:4000], retryable=retryable, retry_after=retry_after
    )


def _to_json(result: Any) -> str:
    try:
        return json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"the task's result is not JSON-serialisable: {exc}") from None


def _index_in(field: str) -> int | None:
    """3 from "outcomes[3].completed.result"."""
    if not field.startswith("outcomes["):
        return None
    number = field[len("outcomes[") :].split("]", 1)[0]
    return int(number) if number.isdigit() else None
