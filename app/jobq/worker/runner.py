"""The worker daemon: lease jobs in batches, run them, heartbeat, report outcomes in batches.

One heartbeat covers every lease the worker holds; outcomes are acknowledged many per call.
A lease is held from LeaseJobs until the server acknowledges its outcome, so heartbeats
keep it alive while the outcome waits to be sent.

A lease is a (job, attempt) pair, and every answer about one (stale, refused, acknowledged)
touches that attempt only. A process runs a job at most once at a time: when the server
hands out a newer attempt of a job still executing here (it reaped the older one while it
could not hear us), the running execution adopts the new lease and reports under it
(ADR 0007).
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
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from jobq.core.errors import FailedPrecondition, InvalidArgument, JobqError, StaleLease, Unavailable
from jobq.core.model import LeasedJob, LeaseRef, Outcome, OutcomeKind
from jobq.observability import tracing
from jobq.observability.context import correlation_id
from jobq.observability.worker_metrics import WorkerMetrics
from jobq.worker.connection import WorkerConnection
from jobq.worker.context import JobContext
from jobq.worker.outcomes import MAX_MESSAGE_CHARS, UnsendableResult, clean_text, result_json
from jobq.worker.task import PermanentError, RetryLater, Task

log = logging.getLogger("jobq.worker")

# At most this many leases, jobs or outcomes in one call: the server refuses more than
# JQ_MAX_BATCH (1000 by default), and a worker may run up to 10,000 jobs at once.
CALL_BATCH = 500
REPORT_BATCH = CALL_BATCH
PROGRESS_EVERY = 0.5
CANCEL_GRACE = 5.0
MAX_HEARTBEAT_ROUNDS = 100  # an async task that ignores ctx.cancelled is interrupted after this
HEARTBEAT_RETRY_FIRST = 0.1  # seconds; doubled per failure, jittered, until the next beat
REPORT_RETRY_MAX = 5.0


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
    job: LeasedJob
    ctx: JobContext
    lease: LeaseRef  # the attempt this execution answers for: newer once adopted
    task: asyncio.Task[None] | None = None
    outcome: Outcome | None = None  # once finished, until acknowledged or dropped
    rewritten: bool = False  # the server refused the outcome once: it became a failure
    lost: bool = False  # the lease is gone: drop the outcome
    released: bool = False  # given back on drain: drop the outcome

    def to_send(self) -> Outcome:
        assert self.outcome is not None
        if self.outcome.lease is self.lease:  # not adopted since: no copy per outcome
            return self.outcome
        return dataclasses.replace(self.outcome, lease=self.lease)


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
        # Every lease held, executing or with its outcome not yet acknowledged...
        self._held: dict[LeaseRef, Running] = {}
        # ...and the one execution of each job running now.
        self._running: dict[str, Running] = {}
        self._executing = 0
        self._slot_freed = asyncio.Event()
        self._outbox: list[Running] = []
        self._outbox_ready = asyncio.Event()
        self._progress: dict[Running, tuple[float, str]] = {}
        self._series: dict[tuple[str, str, OutcomeKind], Any] = {}
        self._rng = random.Random()
        self._stop = asyncio.Event()
        self._force = False
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.concurrency, thread_name_prefix="jobq-task"
        )
        self.registered = asyncio.Event()
        self._metrics.capacity.set(options.concurrency)
        # Read when scraped, not set twice per job (a lock and a call each time).
        self._metrics.in_flight.set_function(lambda: self._executing)

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
                    # A task whose queue this worker does not lease from (`--queues` chose
                    # others) has no route: its submits name their queue.
                    {t.name: t.queue for t in self._tasks.values() if t.queue in self._opts.queues},
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
                    self._opts.queues,
                    min(free, CALL_BATCH),
                    self._opts.lease_wait,
                    sorted(self._tasks),
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
                # A newer attempt of a job still executing here is adopted even now: giving
                # it back would have the job run elsewhere while it runs on here.
                running_here = [j for j in jobs if self._executing_here(j.id)]
                for job in running_here:
                    self._start(job)
                rest = [LeaseRef(j.id, j.attempt) for j in jobs if j not in running_here]
                if rest:
                    await self._give_back(rest)
                return
            for job in jobs:
                self._start(job)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _start(self, job: LeasedJob) -> None:
        lease = LeaseRef(job.id, job.attempt)
        current = self._running.get(job.id)
        if current is not None and self._executing_here(job.id):
            if job.attempt > current.lease.attempt:
                self._adopt(current, lease)
            return
        # An older attempt whose outcome is not yet acknowledged is over on the server (it
        # handed out this one): that outcome was taken already, or will be refused. Either
        # way it is not held any more, and a heartbeat must not name the job twice.
        if job.attempt > 1:  # only a re-lease can have an older attempt here
            self._settle([r for r in self._outbox if r.lease.job_id == job.id])
        loop = asyncio.get_running_loop()
        ctx = JobContext(
            job.id,
            job.type,
            job.queue,
            job.attempt,
            job.correlation_id,
            lambda fraction, message: self._record_progress(running, fraction, message),
            loop,
            lambda: self._conn.parent_results(running.lease),
        )
        running = Running(job, ctx, lease)
        self._held[lease] = running
        self._running[job.id] = running
        self._executing += 1
        running.task = asyncio.create_task(self._execute(running))

    def _executing_here(self, job_id: str) -> bool:
        current = self._running.get(job_id)
        return current is not None and not current.lost

    def _adopt(self, running: Running, lease: LeaseRef) -> None:
        """The server reaped the attempt still running here and handed out `lease`: the one
        execution carries on under the new lease, rather than the job running twice."""
        log.warning(
            "leased attempt %d of a job still running here as attempt %d: it carries on as %d",
            lease.attempt,
            running.lease.attempt,
            lease.attempt,
            extra={"job_id": lease.job_id},
        )
        if self._held.get(running.lease) is running:
            del self._held[running.lease]
        running.lease = lease
        running.ctx.attempt = lease.attempt
        self._held[lease] = running

    async def _execute(self, running: Running) -> None:
        job = running.job
        # Its own asyncio task, so these hold for this job's log lines and spans only.
        correlation_id.set(job.correlation_id)
        try:
            if self._tracer is tracing.NO_TRACER:
                outcome = await self._untraced(running)
            else:
                outcome = await self._traced(running)
        finally:
            if self._running.get(job.id) is running:
                del self._running[job.id]
        if not (running.lost or running.released):
            running.outcome = outcome
            self._outbox.append(running)
            self._outbox_ready.set()

    async def _untraced(self, running: Running) -> Outcome:
        """No spans are exported: none is made, but a task's own spans still join the
        submitter's trace."""
        if running.job.trace_context:
            otel_context.attach(tracing.extract(running.job.trace_context))
        return await self._outcome_of(running)

    async def _traced(self, running: Running) -> Outcome:
        job = running.job
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
            if span.is_recording():
                span.set_attribute("jobq.outcome", outcome.kind.value)
                if outcome.kind is OutcomeKind.FAILED:
                    span.set_status(trace.StatusCode.ERROR, outcome.error)
        return outcome

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
                outcome = Outcome(running.lease, OutcomeKind.COMPLETED, result=result_json(result))
        except asyncio.CancelledError:
            if running.lost or running.released or not ctx.cancelled:
                raise
            outcome = Outcome(running.lease, OutcomeKind.CANCELLED)
        except TimeoutError:
            limit = job.timeout or (task.timeout if task else None)
            outcome = _failure(running.lease, f"timed out after {limit}", retryable=True)
        except PermanentError as exc:
            outcome = _failure(running.lease, f"PermanentError: {exc}", retryable=False)
        except UnsendableResult as exc:
            outcome = _failure(running.lease, str(exc), retryable=False)
        except RetryLater as exc:
            outcome = _failure(
                running.lease, f"RetryLater: {exc}", retryable=True, retry_after=exc.delay
            )
        except Exception as exc:
            log.warning("task %s failed: %r", job.type, exc, extra={"job_id": job.id})
            outcome = _failure(running.lease, f"{type(exc).__name__}: {exc}", retryable=True)
        finally:
            self._executing -= 1
            self._slot_freed.set()
        self._processing(job.queue, job.type, outcome.kind).observe(time.perf_counter() - started)
        return outcome

    def _processing(self, queue: str, job_type: str, kind: OutcomeKind) -> Any:
        """The histogram child for one series, looked up once rather than per job (the
        registry keeps every series anyway, so this holds nothing more)."""
        key = (queue, job_type, kind)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = self._metrics.processing.labels(queue, job_type, kind.value)
        return child

    async def _invoke(self, task: Task, job: LeasedJob, ctx: JobContext) -> Any:
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
        period = interval.total_seconds()
        next_beat = time.monotonic() + period
        while True:
            await asyncio.sleep(max(0.0, next_beat - time.monotonic()))
            next_beat = time.monotonic() + period
            # A failed heartbeat is retried at once, not at the next interval: after a short
            # server outage the lease may have little time left (ADR 0007). Jitter keeps a
            # fleet of workers from retrying in step.
            delay = HEARTBEAT_RETRY_FIRST
            # A beat slower than the lease (three intervals) is of no use any more.
            while not await self._heartbeat(3 * period):
                pause = delay * self._rng.uniform(0.5, 1.0)
                if time.monotonic() + pause >= next_beat:
                    break
                await asyncio.sleep(pause)
                delay = min(delay * 2, period / 2)

    async def _heartbeat(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """One heartbeat of every held lease; False when it should be tried again soon."""
        held = list(self._held)
        chunks = [held[i : i + CALL_BATCH] for i in range(0, len(held), CALL_BATCH)] or [[]]
        beat = True
        for chunk in chunks:
            beat = await self._heartbeat_chunk(chunk, timeout) and beat
        return beat

    async def _heartbeat_chunk(
        self,
        chunk: list[LeaseRef],
        timeout: float | None,  # noqa: ASYNC109 - the gRPC deadline sent with the call
    ) -> bool:
        # A server from before heartbeats named stale leases in their answer rejects the
        # whole call naming a few of them; drop those and send again (bounded).
        for _ in range(MAX_HEARTBEAT_ROUNDS):
            sent = [lease for lease in chunk if lease in self._held]
            try:
                response = await self._conn.heartbeat(sent, timeout=timeout)
            except StaleLease as exc:
                self._lose(_named(exc, sent))
                continue
            except Unavailable as exc:
                log.warning("heartbeat failed, retrying: %s", exc)
                return False
            except FailedPrecondition:
                log.warning("server forgot this worker; registering again")
                await self._register()
                return True
            except JobqError as exc:
                log.error("heartbeat failed, retrying: %s: %s", type(exc).__name__, exc)
                return False
            self._lose(
                (LeaseRef(s.lease.job_id, s.lease.attempt), s.reason) for s in response.stale
            )
            for job_id in response.cancel_job_ids:
                self._request_cancel(job_id)
            if response.drain and not self._stop.is_set():
                log.info("drain requested by an operator")
                self.stop()
            return True
        return True

    def _request_cancel(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is None or running.ctx.cancelled:
            return
        log.info("cancellation requested", extra={"job_id": job_id})
        running.ctx._cancel()
        if running.task is not None and not running.task.done():
            asyncio.get_running_loop().call_later(CANCEL_GRACE, _cancel_if_running, running)

    def _lose(self, stale: Iterable[tuple[LeaseRef, str]]) -> None:
        """The server says these leases are no longer ours. Each names one attempt: a newer
        attempt of the same job, held here, is not touched."""
        dropped = False
        for lease, why in stale:
            running = self._held.pop(lease, None)
            if running is None:
                continue
            log.warning("lease lost: %s", why, extra={"job_id": lease.job_id})
            running.lost = True
            dropped = True
            running.ctx._cancel()
            if running.task is not None and not running.task.done():
                running.task.cancel()
        if dropped:
            self._outbox = [r for r in self._outbox if not r.lost]

    # --- progress -------------------------------------------------------------------------

    def _record_progress(self, running: Running, fraction: float, message: str) -> None:
        if self._running.get(running.lease.job_id) is running:
            self._progress[running] = (fraction, clean_text(message, MAX_MESSAGE_CHARS))

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            pending, self._progress = self._progress, {}
            for running, (fraction, message) in pending.items():
                if running.lost or running.released or running.outcome is not None:
                    continue
                lease = running.lease
                try:
                    if await self._conn.progress(lease, fraction, message):
                        self._request_cancel(lease.job_id)
                except StaleLease as exc:
                    self._lose(_named(exc, [lease]))
                except JobqError as exc:
                    log.warning("progress report failed: %s: %s", type(exc).__name__, exc)

    # --- outcomes ---------------------------------------------------------------------------

    async def _report_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            await asyncio.sleep(self._opts.report_interval.total_seconds())
            batch = self._outbox[:REPORT_BATCH]
            if batch:
                await self._send(batch)
            if not self._outbox:
                self._outbox_ready.clear()

    async def _send(self, batch: list[Running]) -> None:
        """Report `batch` until each outcome is acknowledged or dropped.

        Only UNAVAILABLE sends the same batch again. An outcome the server refuses by name
        is replaced by a failure, and dropped if that is refused too; any other error splits
        the batch, so one bad outcome never holds back the others (ADR 0007).
        """
        delay = HEARTBEAT_RETRY_FIRST
        while True:
            # A lease lost or let go meanwhile (a heartbeat said so, or a newer attempt came)
            # has nothing left to report.
            batch = [r for r in batch if self._held.get(r.lease) is r]
            if not batch:
                return
            try:
                await self._conn.report([r.to_send() for r in batch])
            except Unavailable as exc:
                log.warning("reporting outcomes failed, will retry: %s", exc)
                await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))
                delay = min(delay * 2, REPORT_RETRY_MAX)
                continue
            except StaleLease as exc:
                self._lose(_named(exc, [r.lease for r in batch]))
                remaining = [r for r in batch if self._held.get(r.lease) is r]
                if len(remaining) < len(batch):
                    batch = remaining
                    continue
                error: JobqError = exc
            except InvalidArgument as exc:
                index = _index_in(exc.field)
                if index is not None and index < len(batch):
                    if not self._refused(batch[index], exc):
                        batch = batch[:index] + batch[index + 1 :]
                    continue
                error = exc
            except JobqError as exc:
                error = exc
            else:
                self._settle(batch)
                return
            if len(batch) == 1:
                if not self._refused(batch[0], error):
                    return
                continue
            log.warning(
                "reporting %d outcomes failed, splitting the batch: %s: %s",
                len(batch),
                type(error).__name__,
                error,
            )
            middle = len(batch) // 2
            await self._send(batch[:middle])
            batch = batch[middle:]

    def _refused(self, running: Running, exc: JobqError) -> bool:
        """The server would not take this outcome: fail the attempt instead, once (True);
        if even that was refused, drop it (False) and let its lease expire."""
        if not running.rewritten:
            log.error(
                "the server refused an outcome; failing the attempt instead: %s: %s",
                type(exc).__name__,
                exc,
                extra={"job_id": running.lease.job_id},
            )
            running.rewritten = True
            running.outcome = _failure(
                running.lease, f"the server refused this outcome: {exc}", retryable=False
            )
            return True
        log.error(
            "the server refused an outcome twice; dropping it: the lease will expire and the "
            "job run again: %s: %s",
            type(exc).__name__,
            exc,
            extra={"job_id": running.lease.job_id},
        )
        self._settle([running])
        return False

    def _settle(self, runs: list[Running]) -> None:
        """These outcomes are done with (acknowledged or dropped): forget their leases."""
        done = set(runs)
        self._outbox = [r for r in self._outbox if r not in done]
        for running in runs:
            if self._held.get(running.lease) is running:
                del self._held[running.lease]

    # --- drain ------------------------------------------------------------------------------

    async def _drain(self) -> None:
        grace = 0.0 if self._force else self._opts.grace_period.total_seconds()
        deadline = time.monotonic() + grace
        while self._executing and time.monotonic() < deadline and not self._force:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), deadline - time.monotonic())
        unfinished = [r for r in self._running.values() if r.task is not None and not r.task.done()]
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
            if self._held.get(running.lease) is running:
                del self._held[running.lease]
        await self._give_back([r.lease for r in runs])

    async def _give_back(self, leases: list[LeaseRef]) -> None:
        for start in range(0, len(leases), CALL_BATCH):
            try:
                stale = await self._conn.release(leases[start : start + CALL_BATCH])
            except JobqError as exc:
                log.error("could not release leases; they will expire: %s", exc)
                continue
            for lease, why in stale:
                log.info("not released, no longer held: %s", why, extra={"job_id": lease.job_id})

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
        lease,
        OutcomeKind.FAILED,
        error=clean_text(error),
        retryable=retryable,
        retry_after=retry_after,
    )


def _named(exc: StaleLease, sent: Sequence[LeaseRef]) -> list[tuple[LeaseRef, str]]:
    """The leases of a call that a StaleLease (which names jobs) is about."""
    return [(lease, exc.stale[lease.job_id]) for lease in sent if lease.job_id in exc.stale]


def _index_in(field: str) -> int | None:
    """3 from "outcomes[3].completed.result"."""
    if not field.startswith("outcomes["):
        return None
    number = field[len("outcomes[") :].split("]", 1)[0]
    return int(number) if number.isdigit() else None
