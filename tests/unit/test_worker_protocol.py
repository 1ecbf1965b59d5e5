"""The worker's side of the protocol against a scripted server: reporting, leases, heartbeats.

No I/O: a fake WorkerConnection records what the worker sends and answers as a server would
(or as a faulty one does). Each test drives a real Worker's loops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from jobq.core.errors import InternalError, InvalidArgument, StaleLease, Unavailable
from jobq.core.model import Job, LeaseRef, Outcome, OutcomeKind
from jobq.core.states import JobState
from jobq.v1 import worker_service_pb2 as pb
from jobq.worker.runner import Worker, WorkerOptions
from jobq.worker.task import Task

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LIVENESS = 10.0  # seconds: a loop that has not settled by then is stalled, not slow


def job(n: int, type_: str = "ok", attempt: int = 1) -> Job:
    return Job(
        id=f"00000000-0000-0000-0000-{n:012d}",
        queue="default",
        type=type_,
        payload="{}",
        state=JobState.RUNNING,
        priority=0,
        attempt=attempt,
        attempt_base=0,
        max_attempts=3,
        run_at=T0,
        created_at=T0,
        updated_at=T0,
    )


class FakeServer:
    """A WorkerConnection that hands out scripted leases and records every report."""

    def __init__(self, report: Callable[[list[Outcome]], None] | None = None) -> None:
        self.worker_id = "w1"
        self.leases: asyncio.Queue[list[Job]] = asyncio.Queue()
        self.acknowledged: list[Outcome] = []
        self.report_calls = 0
        self.beats: list[list[LeaseRef]] = []
        self.heartbeat_answers: list[Any] = []  # exceptions or responses, then OK for ever
        self._report = report
        self.interval = dt.timedelta(hours=1)

    async def register(self, *args: Any) -> dt.timedelta:
        return self.interval

    async def lease(self, queues: Any, max_jobs: int, wait: dt.timedelta, types: Any) -> list[Job]:
        try:
            return await asyncio.wait_for(self.leases.get(), wait.total_seconds())
        except TimeoutError:
            return []

    async def heartbeat(
        self,
        leases: Sequence[LeaseRef],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> pb.HeartbeatResponse:
        self.beats.append(list(leases))
        answer = self.heartbeat_answers.pop(0) if self.heartbeat_answers else None
        if isinstance(answer, Exception):
            raise answer
        return answer or pb.HeartbeatResponse()

    async def progress(self, *args: Any) -> bool:
        return False

    async def report(self, outcomes: Sequence[Outcome]) -> None:
        self.report_calls += 1
        if self._report is not None:
            self._report(list(outcomes))
        self.acknowledged.extend(outcomes)

    async def release(self, leases: Sequence[LeaseRef]) -> list[tuple[LeaseRef, str]]:
        return []

    async def deregister(self) -> None:
        return None

    def outcome_of(self, job_id: str) -> Outcome:
        (found,) = [o for o in self.acknowledged if o.lease.job_id == job_id]
        return found


def tasks(**fns: Callable[..., Any]) -> dict[str, Task]:
    return {name: Task(name, fn) for name, fn in fns.items()}


async def ok(payload: Any) -> str:
    return "done"


@dataclasses.dataclass
class Running:
    worker: Worker
    task: asyncio.Task[None]


async def start(server: FakeServer, task_fns: dict[str, Task], concurrency: int = 30) -> Running:
    options = WorkerOptions(
        queues=["default"],
        concurrency=concurrency,
        lease_wait=dt.timedelta(milliseconds=50),
        report_interval=dt.timedelta(milliseconds=5),
        grace_period=dt.timedelta(seconds=1),
    )
    worker = Worker(server, task_fns, options)  # type: ignore[arg-type]
    return Running(worker, asyncio.create_task(worker.run()))


async def stop(running: Running) -> None:
    running.worker.stop(force=True)
    await asyncio.wait_for(running.task, LIVENESS)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), LIVENESS)


# --- finding 1: one bad outcome never stalls the others --------------------------------------


async def test_a_nul_in_an_exception_is_escaped_and_the_other_outcomes_go_through() -> None:
    # Given a task whose exception text holds NUL (PostgreSQL text cannot store it) and 20 jobs
    # that succeed, behind a server that fails INTERNAL on NUL as PostgreSQL made it do
    def refuse_nul(outcomes: list[Outcome]) -> None:
        if any("\x00" in (o.error or "") for o in outcomes):
            raise InternalError("invalid byte sequence for encoding UTF8: 0x00")

    async def nul(payload: Any) -> None:
        raise ValueError("bad\x00byte \udc80")

    server = FakeServer(refuse_nul)
    running = await start(server, tasks(ok=ok, nul=nul))
    await server.leases.put([job(0, "nul"), *(job(n) for n in range(1, 21))])
    # When they finish, Then all 21 outcomes are acknowledged
    await until(lambda: len(server.acknowledged) == 21)
    failure = server.outcome_of(job(0).id)
    assert failure.kind is OutcomeKind.FAILED
    assert failure.error == "ValueError: bad\\x00byte \\udc80"
    assert running.worker.in_flight == 0, "every acknowledged lease is let go"
    await stop(running)


async def test_an_outcome_that_always_fails_is_split_out_and_dropped_alone() -> None:
    # Given a server that fails INTERNAL on every batch holding one particular job
    poison = job(7).id

    def refuse(outcomes: list[Outcome]) -> None:
        if any(o.lease.job_id == poison for o in outcomes):
            raise InternalError("something the worker cannot fix")

    server = FakeServer(refuse)
    running = await start(server, tasks(ok=ok))
    await server.leases.put([job(n) for n in range(20)])
    # When the worker reports, Then the 19 others are acknowledged and the poison one is
    # dropped (its lease will expire and it runs again) instead of being retried for ever
    await until(lambda: len(server.acknowledged) == 19 and running.worker.in_flight == 0)
    assert sorted(o.lease.job_id for o in server.acknowledged) == sorted(
        job(n).id for n in range(20) if n != 7
    )
    assert server.report_calls < 20, "split by halves, not one call per outcome or for ever"
    await stop(running)


async def test_an_outcome_refused_by_name_becomes_a_failure_and_the_rest_are_kept() -> None:
    # Given a server that refuses any completed result over its (small) size limit
    def refuse_big(outcomes: list[Outcome]) -> None:
        for i, outcome in enumerate(outcomes):
            if outcome.kind is OutcomeKind.COMPLETED and len(outcome.result or "") > 100:
                raise InvalidArgument(f"outcomes[{i}].completed.result", "is over 100 bytes")

    async def big(payload: Any) -> str:
        return "x" * 500

    server = FakeServer(refuse_big)
    running = await start(server, tasks(ok=ok, big=big))
    await server.leases.put([job(0), job(1, "big"), job(2)])
    await until(lambda: len(server.acknowledged) == 3)
    refused = server.outcome_of(job(1).id)
    assert (refused.kind, refused.retryable) == (OutcomeKind.FAILED, False)
    assert "outcomes[1].completed.result: is over 100 bytes" in (refused.error or "")
    assert server.outcome_of(job(2).id).kind is OutcomeKind.COMPLETED
    await stop(running)


async def test_a_result_too_deep_for_the_server_fails_the_attempt_with_a_clear_error() -> None:
    async def deep(payload: Any) -> Any:
        value: Any = 1
        for _ in range(975):
            value = [value]
        return value

    server = FakeServer()
    running = await start(server, tasks(ok=ok, deep=deep))
    await server.leases.put([job(0, "deep"), job(1)])
    await until(lambda: len(server.acknowledged) == 2)
    failed = server.outcome_of(job(0).id)
    assert failed.kind is OutcomeKind.FAILED
    assert failed.error == "the task's result is nested deeper than 100 levels"
    await stop(running)


async def test_unavailable_retries_the_same_batch_until_the_server_is_back() -> None:
    down = [True]

    def maybe_down(outcomes: list[Outcome]) -> None:
        if down[0]:
            raise Unavailable("connection refused")

    server = FakeServer(maybe_down)
    running = await start(server, tasks(ok=ok))
    await server.leases.put([job(n) for n in range(5)])
    await until(lambda: server.report_calls >= 3)
    assert server.acknowledged == []
    down[0] = False
    await until(lambda: len(server.acknowledged) == 5)
    await stop(running)


# --- finding 4: leases are (job, attempt); one execution per job -------------------------------


async def test_a_newer_attempt_of_a_running_job_is_adopted_not_run_again() -> None:
    # Given attempt 1 of a job still running here
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(payload: Any, ctx: Any) -> int:
        calls.append(ctx.attempt)
        await release.wait()
        return ctx.attempt

    server = FakeServer()
    running = await start(server, tasks(slow=slow))
    await server.leases.put([job(1, "slow", attempt=1)])
    await until(lambda: calls == [1])
    # When the server, having reaped attempt 1 in an outage, hands this worker attempt 2
    await server.leases.put([job(1, "slow", attempt=2)])
    await until(lambda: server.leases.empty() and LeaseRef(job(1).id, 2) in running.worker._held)
    # And a late answer says attempt 1 is stale
    server.heartbeat_answers = [
        pb.HeartbeatResponse(
            stale=[pb.StaleLease(lease=pb.LeaseRef(job_id=job(1).id, attempt=1), reason="reaped")]
        )
    ]
    assert await running.worker._heartbeat()
    assert server.beats[-1] == [LeaseRef(job(1).id, 2)], "only the adopted lease is held"
    release.set()
    # Then the job ran once, and its outcome is reported under attempt 2
    await until(lambda: len(server.acknowledged) == 1)
    assert calls == [1]
    assert server.acknowledged[0].lease == LeaseRef(job(1).id, 2)
    await stop(running)


async def test_a_stale_answer_for_one_attempt_leaves_another_attempt_alone() -> None:
    # Given attempt 1's outcome in the outbox behind an unavailable server, and attempt 2
    # of the same job (a genuine retry) now running
    release = asyncio.Event()
    down = [True]

    def maybe_down(outcomes: list[Outcome]) -> None:
        if down[0]:
            raise Unavailable("down")

    async def slow(payload: Any, ctx: Any) -> int:
        if ctx.attempt == 2:
            await release.wait()
        return ctx.attempt

    server = FakeServer(maybe_down)
    running = await start(server, tasks(slow=slow))
    await server.leases.put([job(1, "slow", attempt=1)])
    await until(lambda: server.report_calls >= 1)
    await server.leases.put([job(1, "slow", attempt=2)])
    await until(lambda: LeaseRef(job(1).id, 2) in running.worker._held)
    assert await running.worker._heartbeat()
    assert server.beats[-1] == [LeaseRef(job(1).id, 2)], "a heartbeat names each job once"
    # When the server says the job's lease is stale for a call that named attempt 1
    running.worker._lose([(LeaseRef(job(1).id, 1), "attempt 1 is stale")])
    # Then attempt 2 keeps running and is reported
    down[0] = False
    release.set()
    await until(lambda: len(server.acknowledged) == 1)
    assert server.acknowledged[0].lease == LeaseRef(job(1).id, 2)
    await stop(running)


async def test_an_old_servers_stale_error_drops_only_the_attempt_it_names() -> None:
    # Given two jobs running, and a server from before heartbeats answered with `stale`: it
    # rejects the whole heartbeat naming the job whose lease it reaped
    release = asyncio.Event()

    async def slow(payload: Any) -> None:
        await release.wait()

    server = FakeServer()
    running = await start(server, tasks(slow=slow))
    await server.leases.put([job(1, "slow"), job(2, "slow")])
    await until(lambda: len(running.worker._held) == 2)
    server.heartbeat_answers = [StaleLease({job(1).id: "attempt 1 is stale"})]
    # When the worker heartbeats
    assert await running.worker._heartbeat()
    # Then it drops that attempt and heartbeats the other at once
    one, two = LeaseRef(job(1).id, 1), LeaseRef(job(2).id, 1)
    assert server.beats == [[one, two], [two]]
    assert list(running.worker._held) == [two]
    release.set()
    await until(lambda: len(server.acknowledged) == 1)
    assert server.acknowledged[0].lease == two
    await stop(running)


# --- finding 5: a failed heartbeat is retried at once, not at the next interval ----------------


async def test_a_failed_heartbeat_is_retried_promptly_until_it_gets_through() -> None:
    # Given a heartbeat interval of 3s and a server down for the beat's first 3 tries
    server = FakeServer()
    server.interval = dt.timedelta(seconds=3)
    server.heartbeat_answers = [Unavailable("down")] * 3
    running = await start(server, tasks(ok=ok))
    await until(lambda: len(server.beats) == 1)
    # When the first beat fails, Then it is retried until the server answers, well before
    # the next interval (which would bring the 4th try only after 9s more)
    await asyncio.wait_for(until(lambda: len(server.beats) == 4), 3)
    await asyncio.sleep(0.3)
    assert len(server.beats) == 4, "once through, nothing more until the next interval"
    await stop(running)


@pytest.mark.parametrize("depth", [99, 100])
def test_results_up_to_the_depth_limit_are_sent_as_they_are(depth: int) -> None:
    from jobq.worker.outcomes import result_json

    value: Any = 1
    for _ in range(depth):
        value = [value]
    assert result_json(value) == "[" * depth + "1" + "]" * depth


# --- a worker that holds more leases than one call may carry -------------------------------


async def test_a_worker_holding_more_leases_than_a_call_carries_splits_its_calls() -> None:
    # Given a worker allowed 1,200 jobs at once, behind a server that refuses more than
    # 1,000 leases or jobs in one call (JQ_MAX_BATCH's default)
    from jobq.worker.runner import CALL_BATCH

    asked: list[int] = []
    server = FakeServer()
    real_lease = server.lease

    async def lease(queues: Any, max_jobs: int, wait: dt.timedelta, types: Any) -> list[Job]:
        asked.append(max_jobs)
        if max_jobs > 1000:
            raise InvalidArgument("max_jobs", "must be in 1..1000")
        return await real_lease(queues, max_jobs, wait, types)

    server.lease = lease  # type: ignore[method-assign]
    release = asyncio.Event()

    async def hold(payload: Any) -> str:
        await release.wait()
        return "done"

    running = await start(server, tasks(hold=hold), concurrency=1200)
    await server.leases.put([job(n, "hold") for n in range(1200)])
    await until(lambda: running.worker.in_flight == 1200)
    registry = running.worker._metrics.registry
    assert registry.get_sample_value("jq_worker_jobs_in_flight") == 1200, "read when scraped"
    # When it heartbeats, Then every lease is sent, none in a call over the limit
    assert await running.worker._heartbeat()
    beats = server.beats[-3:]
    assert [len(b) for b in beats] == [CALL_BATCH, CALL_BATCH, 200]
    assert {lease for b in beats for lease in b} == {LeaseRef(job(n).id, 1) for n in range(1200)}
    assert max(asked) <= 1000, "a lease call asks for no more than the server grants"
    release.set()
    await until(lambda: len(server.acknowledged) == 1200)
    assert registry.get_sample_value("jq_worker_jobs_in_flight") == 0
    await stop(running)
