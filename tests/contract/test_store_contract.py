"""Every store backend must pass this suite: it is the contract the server relies on."""

from __future__ import annotations

import dataclasses

import pytest

from jobq.core.bounds import is_job_id
from jobq.core.clock import FixedClock
from jobq.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StaleLease,
)
from jobq.core.model import Ended, JobFilter, LeasedJob, Outcome, OutcomeKind, WorkerState
from jobq.core.states import TERMINAL_STATES, EventKind, JobState
from jobq.store.base import DeadLetterSelector, Store

from .helpers import lease_of, new_job, register, seconds, submit

S, E = JobState, EventKind


async def lease_one(store: Store, clock: FixedClock, worker: str = "w1", queue: str = "default"):
    jobs = await store.jobs.lease(worker, [queue], 1, clock.now())
    assert len(jobs) == 1, "expected exactly one job to lease"
    return jobs[0]


def completed(job, result: str = '"ok"') -> Outcome:
    return Outcome(lease_of(job), OutcomeKind.COMPLETED, result=result)


def failed(job, retryable: bool = True, error: str = "boom") -> Outcome:
    return Outcome(lease_of(job), OutcomeKind.FAILED, error=error, retryable=retryable)


# --- submit ------------------------------------------------------------------------------


async def test_submit_then_get_returns_the_stored_job(store: Store, clock: FixedClock) -> None:
    job = await submit(store, clock, payload='{"to": "a@b.c"}', priority=5, queue="emails")
    got = await store.jobs.get(job.id)
    assert got == job
    assert (got.state, got.queue, got.priority, got.payload) == (
        S.QUEUED,
        "emails",
        5,
        '{"to": "a@b.c"}',
    )
    assert got.max_attempts == 3, "the queue default applies when the job sets none"


async def test_delayed_job_is_scheduled_and_not_leasable_until_promoted(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, delay=seconds(60))
    assert job.state is S.SCHEDULED
    assert await store.jobs.lease("w1", ["default"], 10, clock.now()) == []
    clock.advance(59)
    assert await store.jobs.promote_due(clock.now(), 100) == 0
    clock.advance(1)
    assert await store.jobs.promote_due(clock.now(), 100) == 1
    assert (await lease_one(store, clock)).id == job.id


async def test_same_idempotency_key_returns_the_existing_job(store, clock) -> None:
    first = await submit(store, clock, payload='{"n": 1}', idempotency_key="order-42")
    results = await store.jobs.submit(
        [new_job(clock, payload='{"n": 1}', idempotency_key="order-42")], clock.now()
    )
    assert results[0].created is False
    assert results[0].job.id == first.id
    page = await store.jobs.page(JobFilter(), 10, None)
    assert [j.id for j in page.jobs] == [first.id]


async def test_idempotency_key_with_another_payload_is_a_conflict(store, clock) -> None:
    await submit(store, clock, payload='{"n": 1}', idempotency_key="order-42")
    with pytest.raises(AlreadyExists):
        await submit(store, clock, payload='{"n": 2}', idempotency_key="order-42")
    assert len((await store.jobs.page(JobFilter(), 10, None)).jobs) == 1


async def test_idempotency_keys_are_per_queue(store, clock) -> None:
    a = await submit(store, clock, queue="a", idempotency_key="k")
    b = await submit(store, clock, queue="b", idempotency_key="k")
    assert a.id != b.id


async def test_a_batch_is_all_or_nothing(store, clock) -> None:
    await submit(store, clock, payload="1", idempotency_key="taken")
    batch = [new_job(clock, payload="2"), new_job(clock, payload="3", idempotency_key="taken")]
    with pytest.raises(AlreadyExists):
        await store.jobs.submit(batch, clock.now())
    assert len((await store.jobs.page(JobFilter(), 10, None)).jobs) == 1


async def test_a_key_repeated_within_one_batch_is_rejected(store, clock) -> None:
    batch = [new_job(clock, idempotency_key="k"), new_job(clock, idempotency_key="k")]
    with pytest.raises(InvalidArgument):
        await store.jobs.submit(batch, clock.now())
    assert (await store.jobs.page(JobFilter(), 10, None)).jobs == []


# --- leasing order -------------------------------------------------------------------------


async def test_lease_order_is_priority_then_run_at_then_submission(store, clock) -> None:
    await register(store, clock)
    low = await submit(store, clock, priority=0)
    clock.advance(1)
    high_late = await submit(store, clock, priority=9)
    clock.advance(1)
    low_later = await submit(store, clock, priority=0)
    high_early = await submit(store, clock, priority=9, run_at=clock.now() - seconds(10))
    leased = await store.jobs.lease("w1", ["default"], 10, clock.now())
    assert [j.id for j in leased] == [high_early.id, high_late.id, low.id, low_later.id]


async def test_a_lean_lease_is_the_whole_lease_in_fewer_fields(store, clock) -> None:
    # Given jobs with a trace context, a correlation id, a timeout and priorities, two of
    # them leased whole
    await register(store, clock)
    fields = {"trace_context": {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
              "correlation_id": "c-1", "timeout": seconds(7)}  # fmt: skip
    ids = [(await submit(store, clock, priority=p, payload=f"{p}", **fields)).id for p in (1, 5, 3)]
    whole = await store.jobs.lease("w1", ["default"], 2, clock.now())
    lean = await store.jobs.lease("w1", ["default"], 10, clock.now(), lean=True)
    # When the rest is leased lean
    # Then it is handed out as a LeasedJob that says what the stored job does
    assert [j.id for j in whole] == [ids[1], ids[2]]
    (only,) = lean
    assert isinstance(only, LeasedJob)
    got = await store.jobs.get(only.id)
    assert got is not None and got.state is S.RUNNING and got.worker_id == "w1"
    assert (only.id, only.queue, only.tenant, only.type, only.payload, only.attempt,
            only.timeout, only.correlation_id, only.trace_context, only.priority, only.run_at,
            only.lease_expires_at, only.workflow_id) == (
        got.id, got.queue, got.tenant, got.type, got.payload, got.attempt, got.timeout,
        got.correlation_id, got.trace_context, got.priority, got.run_at, got.lease_expires_at,
        got.workflow_id)  # fmt: skip
    # And its start event is the one a whole lease writes
    (_, started_whole) = await store.jobs.events(whole[0].id)
    (_, started_lean) = await store.jobs.events(only.id)
    assert started_lean.kind is EventKind.STARTED and started_lean.from_state is S.QUEUED
    assert started_lean.details == started_whole.details
    assert started_lean.details["due_at"] == got.run_at.isoformat()
    assert started_lean.details["worker_id"] == "w1"


async def test_lease_hands_out_at_most_max_jobs_and_marks_them_running(store, clock) -> None:
    await register(store, clock)
    for _ in range(5):
        await submit(store, clock)
    leased = await store.jobs.lease("w1", ["default"], 3, clock.now())
    assert len(leased) == 3
    for job in leased:
        assert (job.state, job.attempt, job.worker_id) == (S.RUNNING, 1, "w1")
        assert job.lease_expires_at == clock.now() + seconds(30)
    rest = await store.jobs.lease("w1", ["default"], 10, clock.now())
    assert len(rest) == 2
    assert not {j.id for j in leased} & {j.id for j in rest}, "a job was leased twice"


async def test_paused_queue_is_not_leased_until_resumed(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock, queue="q")
    await store.queues.update("q", {"paused": True}, clock.now())
    assert await store.jobs.lease("w1", ["q"], 10, clock.now()) == []
    await store.queues.update("q", {"paused": False}, clock.now())
    assert len(await store.jobs.lease("w1", ["q"], 10, clock.now())) == 1


async def test_lease_takes_only_the_task_types_asked_for(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock, type="a")
    b = await submit(store, clock, type="b")
    leased = await store.jobs.lease("w1", ["default"], 10, clock.now(), task_types=["b"])
    assert [j.id for j in leased] == [b.id]


async def test_queue_concurrency_limit_caps_running_jobs(store, clock) -> None:
    await register(store, clock)
    for _ in range(4):
        await submit(store, clock, queue="q")
    await store.queues.update("q", {"concurrency_limit": 2}, clock.now())
    assert len(await store.jobs.lease("w1", ["q"], 10, clock.now())) == 2
    assert await store.jobs.lease("w1", ["q"], 10, clock.now()) == []


async def test_key_cap_runs_one_job_per_key_and_skips_a_busy_key_to_the_next(store, clock):
    # Given a queue capped at 1 running job per concurrency key, and a backlog of one
    # customer's jobs ahead of another customer's
    await register(store, clock)
    a = [await submit(store, clock, queue="q", concurrency_key="cust-a") for _ in range(3)]
    b = await submit(store, clock, queue="q", concurrency_key="cust-b")
    free = await submit(store, clock, queue="q")
    await store.queues.update("q", {"key_concurrency_limit": 1}, clock.now())
    # When a worker asks for 10
    leased = await store.jobs.lease("w1", ["q"], 10, clock.now())
    # Then it gets one of each key (the first of "a", not hidden behind a's backlog) and the
    # keyless job; a's other jobs stay queued, unclaimed
    assert {j.id for j in leased} == {a[0].id, b.id, free.id}
    assert await store.jobs.lease("w1", ["q"], 10, clock.now()) == []
    assert (await store.jobs.get(a[1].id)).state is S.QUEUED
    # And when a's job finishes, its key's next job may start
    await store.jobs.report(
        "w1", [completed(next(j for j in leased if j.id == a[0].id))], clock.now()
    )
    assert [j.id for j in await store.jobs.lease("w1", ["q"], 10, clock.now())] == [a[1].id]


async def test_key_cap_slot_comes_back_when_the_lease_expires(store, clock):
    # Given a key capped at 1 whose running job's worker vanished
    await register(store, clock)
    first = await submit(store, clock, queue="q", concurrency_key="k")
    await submit(store, clock, queue="q", concurrency_key="k")
    await store.queues.update("q", {"key_concurrency_limit": 1}, clock.now())
    assert [j.id for j in await store.jobs.lease("w1", ["q"], 5, clock.now())] == [first.id]
    assert await store.jobs.lease("w1", ["q"], 5, clock.now()) == []
    # When its lease expires and the reaper runs
    clock.advance(31)
    await store.jobs.reap_expired_leases(clock.now(), 100)
    # Then the key's slot is free again: a crash never leaks it
    leased = await store.jobs.lease("w1", ["q"], 5, clock.now())
    assert len(leased) == 1 and leased[0].concurrency_key == "k"


class _AdmitFirst:
    """A limiter that admits only the first `n` candidates it is shown."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.asked: list[int] = []
        self.running_seen: dict[str, int] = {}

    async def admit(self, candidates, limit):
        self.asked.append(len(candidates))
        return list(range(min(self.n, limit, len(candidates))))

    def throttled(self, queue, reason, count):
        pass

    def running(self, queue, count):
        self.running_seen[queue] = count

    def order(self, queues):
        return list(queues)

    def tenant_cap(self, tenant):
        return 0

    def started(self, queues, counts, empty):
        pass


async def test_rate_limited_lease_asks_once_per_batch_and_claims_only_the_admitted(store, clock):
    # Given a rate-limited queue with 5 jobs and a limiter that admits 2
    await register(store, clock)
    jobs = [await submit(store, clock, queue="q") for _ in range(5)]
    await store.queues.update("q", {"rate_limit": 1.0}, clock.now())
    limits = _AdmitFirst(2)
    # When a worker asks for 5
    leased = await store.jobs.lease("w1", ["q"], 5, clock.now(), limits=limits)
    # Then the limiter was asked once, for the whole batch, and only 2 started
    assert limits.asked == [5]
    assert [j.id for j in leased] == [j.id for j in jobs[:2]]
    states = [(await store.jobs.get(j.id)).state for j in jobs]
    assert states == [S.RUNNING, S.RUNNING, S.QUEUED, S.QUEUED, S.QUEUED]


async def test_queue_weights_share_leases_across_queues(store, clock) -> None:
    await register(store, clock, queues=("heavy", "light"))
    for _ in range(300):
        await submit(store, clock, queue="heavy")
        await submit(store, clock, queue="light")
    await store.queues.update("heavy", {"weight": 3}, clock.now())
    firsts = [
        (await store.jobs.lease("w1", ["heavy", "light"], 1, clock.now()))[0].queue
        for _ in range(200)
    ]
    share = firsts.count("heavy") / len(firsts)
    assert 0.65 < share < 0.85, f"weight 3:1 should give heavy ~75% of leases, got {share:.0%}"


async def test_expired_job_is_never_leased(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, ttl=seconds(5))
    clock.advance(6)
    assert await store.jobs.lease("w1", ["default"], 10, clock.now()) == []
    assert await store.jobs.expire_unstarted(clock.now(), 100) == ["default"]
    assert (await store.jobs.get(job.id)).state is S.EXPIRED


# --- heartbeats and fencing -------------------------------------------------------------


async def test_heartbeat_extends_the_lease(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    clock.advance(20)
    result = await store.jobs.heartbeat("w1", [lease_of(job)], clock.now())
    assert result.lease_expires_at == clock.now() + seconds(30)
    clock.advance(20)  # 40s after the lease: without the heartbeat it would have expired
    assert await store.jobs.reap_expired_leases(clock.now(), 100) == []
    assert (await store.jobs.get(job.id)).state is S.RUNNING


async def test_stale_heartbeat_is_reported_and_changes_nothing(store, clock) -> None:
    await register(store, clock)
    await register(store, clock, "w2")
    await submit(store, clock)
    first = await lease_one(store, clock)
    clock.advance(31)
    await store.jobs.reap_expired_leases(clock.now(), 100)
    clock.advance(3600)
    await store.jobs.promote_due(clock.now(), 100)
    second = await lease_one(store, clock, "w2")
    assert second.attempt == first.attempt + 1
    before = await store.jobs.get(second.id)
    result = await store.jobs.heartbeat("w1", [lease_of(first)], clock.now() + seconds(1))
    assert [(s.lease, s.reason) for s in result.stale] == [
        (lease_of(first), f"attempt {first.attempt} is stale, the current attempt is 2")
    ]
    assert result.lease_expires_at is None
    assert await store.jobs.get(second.id) == before


async def test_one_stale_lease_does_not_stop_the_others_being_extended(store, clock) -> None:
    # Given two leases, one of which was completed by an outcome report
    await register(store, clock)
    await submit(store, clock)
    await submit(store, clock)
    a, b = await store.jobs.lease("w1", ["default"], 2, clock.now())
    await store.jobs.report("w1", [completed(b)], clock.now())
    # When the worker heartbeats both
    clock.advance(20)
    result = await store.jobs.heartbeat("w1", [lease_of(a), lease_of(b)], clock.now())
    # Then the live one is extended and the stale one is named, with why
    assert [s.lease for s in result.stale] == [lease_of(b)]
    assert result.stale[0].reason == "job is succeeded, not running"
    assert (await store.jobs.get(a.id)).lease_expires_at == clock.now() + seconds(30)
    clock.advance(20)
    assert await store.jobs.reap_expired_leases(clock.now(), 100) == []


async def test_heartbeat_reports_cancellation_and_drain(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    await store.jobs.cancel(job.id, clock.now(), "user asked")
    await store.workers.set_state("w1", WorkerState.DRAINING)
    result = await store.jobs.heartbeat("w1", [lease_of(job)], clock.now())
    assert result.cancel_job_ids == (job.id,)
    assert result.drain is True


async def test_a_heartbeat_of_many_leases_names_each_cancel_and_stale_one(store, clock) -> None:
    # Given four leases: two with a cancel requested, one completed meanwhile
    await register(store, clock)
    for _ in range(4):
        await submit(store, clock)
    a, b, c, d = await store.jobs.lease("w1", ["default"], 4, clock.now())
    await store.jobs.cancel(a.id, clock.now(), "stop")
    await store.jobs.cancel(c.id, clock.now(), "stop")
    await store.jobs.report("w1", [completed(d)], clock.now())
    clock.advance(20)
    # When the worker heartbeats all four
    result = await store.jobs.heartbeat("w1", [lease_of(j) for j in (a, b, c, d)], clock.now())
    # Then the live three are extended, the cancels named, and the completed one is stale
    assert sorted(result.cancel_job_ids) == sorted([a.id, c.id])
    assert [s.lease for s in result.stale] == [lease_of(d)]
    assert result.lease_expires_at == clock.now() + seconds(30)
    assert result.drain is False
    for job in (a, b, c):
        assert (await store.jobs.get(job.id)).lease_expires_at == clock.now() + seconds(30)


async def test_a_heartbeat_from_an_unknown_worker_extends_nothing(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    with pytest.raises(FailedPrecondition):
        await store.jobs.heartbeat("nobody", [lease_of(job)], clock.now() + seconds(20))
    assert (await store.jobs.get(job.id)).lease_expires_at == clock.now() + seconds(30)


async def test_a_worker_read_without_its_jobs_counted(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    await lease_one(store, clock)
    counted = await store.workers.get("w1")
    bare = await store.workers.get("w1", count_jobs=False)
    assert counted is not None and counted.in_flight == 1
    assert bare == dataclasses.replace(counted, in_flight=0)


async def test_heartbeat_from_an_unknown_worker_fails(store, clock) -> None:
    with pytest.raises(FailedPrecondition):
        await store.jobs.heartbeat("nobody", [], clock.now())


# --- outcomes ---------------------------------------------------------------------------


async def test_completion_stores_the_result(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    clock.advance(2)
    (done,) = await store.jobs.report("w1", [completed(job, '{"sent": true}')], clock.now())
    assert (done.state, done.result, done.finished_at, done.worker_id) == (
        S.SUCCEEDED,
        '{"sent": true}',
        clock.now(),
        None,
    )


async def test_a_lean_report_ends_the_leases_as_a_whole_one_does(store, clock) -> None:
    # Given six running jobs (a concurrency key on one), three reported whole and three lean:
    # a completion, a retryable failure and a failure after a cancel request each
    await register(store, clock)
    for n in range(6):
        await submit(store, clock, correlation_id=f"c{n}", concurrency_key="k" if n == 3 else "")
    jobs = await store.jobs.lease("w1", ["default"], 6, clock.now())
    await store.jobs.cancel(jobs[2].id, clock.now(), "stop")
    await store.jobs.cancel(jobs[5].id, clock.now(), "stop")
    clock.advance(2)

    def outcomes(a, b, c):
        return [completed(a, '{"n": 1}'), failed(b), failed(c, retryable=False)]

    whole = await store.jobs.report("w1", outcomes(*jobs[:3]), clock.now())
    # When the other three are reported lean
    lean = await store.jobs.report("w1", outcomes(*jobs[3:]), clock.now(), lean=True)
    # Then each is acknowledged with its id, queue and new state, in the outcomes' order
    assert all(isinstance(e, Ended) for e in lean)
    assert [(e.id, e.queue, e.tenant, e.state) for e in lean] == [
        (j.id, "default", j.tenant, state)
        for j, state in zip(jobs[3:], (S.SUCCEEDED, S.SCHEDULED, S.CANCELLED), strict=True)
    ]
    assert lean[0].concurrency_key == "k"
    # And the stored jobs and their events are as a whole report leaves them
    for before, after in zip(whole, lean, strict=True):
        stored = await store.jobs.get(after.id)
        assert stored is not None and stored.worker_id is None
        assert stored.lease_expires_at is None and stored.updated_at == clock.now()
        assert (stored.state, stored.result, stored.last_error, stored.progress,
                stored.finished_at, stored.attempt_base) == (
            before.state, before.result, before.last_error, before.progress,
            before.finished_at, before.attempt_base)  # fmt: skip
        ended_whole = (await store.jobs.events(before.id))[-1]
        ended_lean = (await store.jobs.events(after.id))[-1]
        assert (ended_lean.kind, ended_lean.from_state, ended_lean.to_state) == (
            ended_whole.kind, ended_whole.from_state, ended_whole.to_state)  # fmt: skip
        assert ended_lean.details.keys() == ended_whole.details.keys()
        assert ended_lean.details["correlation_id"] == stored.correlation_id


async def test_stale_completion_is_rejected_and_changes_nothing(store, clock) -> None:
    await register(store, clock)
    await register(store, clock, "w2")
    await submit(store, clock)
    zombie = await lease_one(store, clock)
    clock.advance(31)
    await store.jobs.reap_expired_leases(clock.now(), 100)
    clock.advance(3600)
    await store.jobs.promote_due(clock.now(), 100)
    current = await lease_one(store, clock, "w2")
    with pytest.raises(StaleLease):
        await store.jobs.report("w1", [completed(zombie)], clock.now())
    with pytest.raises(StaleLease):
        await store.jobs.report("w1", [failed(zombie)], clock.now())
    assert (await store.jobs.get(current.id)) == current
    (done,) = await store.jobs.report("w2", [completed(current)], clock.now())
    assert done.state is S.SUCCEEDED


async def test_a_batch_of_outcomes_is_all_or_nothing(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    await submit(store, clock)
    a, b = await store.jobs.lease("w1", ["default"], 2, clock.now())
    await store.jobs.report("w1", [completed(b)], clock.now())
    with pytest.raises(StaleLease):
        await store.jobs.report("w1", [completed(a), completed(b)], clock.now())
    assert (await store.jobs.get(a.id)).state is S.RUNNING


async def test_failure_retries_with_backoff_until_dead(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, max_attempts=3)
    for attempt in (1, 2):
        await store.jobs.promote_due(clock.now() + seconds(7200), 100)
        leased = await lease_one(store, clock)
        assert leased.attempt == attempt
        (after,) = await store.jobs.report("w1", [failed(leased)], clock.now())
        assert after.state is S.SCHEDULED
        ceiling = seconds(2 ** (attempt - 1))  # base 1s, doubling
        assert clock.now() <= after.run_at <= clock.now() + ceiling
        assert after.last_error == "boom"
        clock.advance(ceiling.total_seconds())
    await store.jobs.promote_due(clock.now(), 100)
    last = await lease_one(store, clock)
    (dead,) = await store.jobs.report("w1", [failed(last)], clock.now())
    assert (dead.state, dead.attempt) == (S.DEAD, 3)
    kinds = [e.kind for e in await store.jobs.events(job.id)]
    assert kinds.count(EventKind.RETRY_SCHEDULED) == 2
    assert kinds[-1] is EventKind.DEAD_LETTERED


async def test_non_retryable_failure_dead_letters_at_once(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock, max_attempts=5)
    job = await lease_one(store, clock)
    (dead,) = await store.jobs.report("w1", [failed(job, retryable=False)], clock.now())
    assert dead.state is S.DEAD


async def test_explicit_retry_after_overrides_backoff(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    outcome = dataclasses.replace(failed(job), retry_after=seconds(600))
    (after,) = await store.jobs.report("w1", [outcome], clock.now())
    assert after.run_at == clock.now() + seconds(600)


# --- lease expiry -------------------------------------------------------------------------


async def test_expired_lease_is_retried_and_leased_again(store, clock) -> None:
    await register(store, clock)
    await register(store, clock, "w2")
    job = await submit(store, clock)
    first = await lease_one(store, clock)
    clock.advance(29)
    assert await store.jobs.reap_expired_leases(clock.now(), 100) == []
    clock.advance(1)
    (reaped,) = await store.jobs.reap_expired_leases(clock.now(), 100)
    assert reaped.state is S.SCHEDULED
    assert "lease expired" in (reaped.last_error or "")
    clock.advance(3600)
    await store.jobs.promote_due(clock.now(), 100)
    second = await lease_one(store, clock, "w2")
    assert (second.id, second.attempt) == (job.id, first.attempt + 1)
    kinds = [e.kind for e in await store.jobs.events(job.id)]
    assert EventKind.LEASE_EXPIRED in kinds


async def test_expired_lease_on_the_last_attempt_dead_letters(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock, max_attempts=1)
    await lease_one(store, clock)
    clock.advance(31)
    (reaped,) = await store.jobs.reap_expired_leases(clock.now(), 100)
    assert reaped.state is S.DEAD


# --- cancellation -------------------------------------------------------------------------


async def test_cancel_pending_job_is_immediate_and_it_never_starts(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock)
    cancelled = await store.jobs.cancel(job.id, clock.now(), "")
    assert cancelled.state is S.CANCELLED
    assert await store.jobs.lease("w1", ["default"], 10, clock.now()) == []


async def test_cancel_running_job_is_requested_then_acknowledged(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    requested = await store.jobs.cancel(job.id, clock.now(), "")
    assert (requested.state, requested.cancel_requested) == (S.RUNNING, True)
    outcome = Outcome(lease_of(job), OutcomeKind.CANCELLED)
    (done,) = await store.jobs.report("w1", [outcome], clock.now())
    assert done.state is S.CANCELLED


async def test_a_failure_after_cancel_request_ends_cancelled_not_retried(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    await store.jobs.cancel(job.id, clock.now(), "")
    (done,) = await store.jobs.report("w1", [failed(job)], clock.now())
    assert done.state is S.CANCELLED


async def test_cancel_finished_or_missing_job_fails(store, clock) -> None:
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    await store.jobs.report("w1", [completed(job)], clock.now())
    with pytest.raises(FailedPrecondition):
        await store.jobs.cancel(job.id, clock.now(), "")
    with pytest.raises(NotFound):
        await store.jobs.cancel("no-such-job", clock.now(), "")


# --- release, dead letters, retention ---------------------------------------------------


async def test_release_requeues_without_using_an_attempt(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, max_attempts=1)
    leased = await lease_one(store, clock)
    assert (await store.jobs.release("w1", [lease_of(leased)], clock.now())).released == 1
    again = await lease_one(store, clock)
    assert again.attempt == 2
    (dead,) = await store.jobs.report("w1", [failed(again)], clock.now())
    assert dead.state is S.DEAD, "one real failure on a 1-attempt job dead-letters"
    assert dead.id == job.id


async def test_release_gives_back_what_is_held_and_names_the_stale(store, clock) -> None:
    # Given a draining worker holding one live lease and one already completed
    await register(store, clock)
    await submit(store, clock)
    await submit(store, clock)
    a, b = await store.jobs.lease("w1", ["default"], 2, clock.now())
    await store.jobs.report("w1", [completed(b)], clock.now())
    # When it releases both
    result = await store.jobs.release("w1", [lease_of(a), lease_of(b)], clock.now())
    # Then the live one is queued again and the stale one is named, unchanged
    assert result.released == 1
    assert [(s.lease, s.reason) for s in result.stale] == [
        (lease_of(b), "job is succeeded, not running")
    ]
    assert (await store.jobs.get(a.id)).state is S.QUEUED
    assert (await store.jobs.get(b.id)).state is S.SUCCEEDED


async def test_a_new_leader_reaps_no_lease_for_one_lease_period(store, clock) -> None:
    # Given a lease that expired while the server was down
    await register(store, clock)
    await submit(store, clock)
    job = await lease_one(store, clock)
    clock.advance(40)
    leader_since = clock.now()
    # When a leader that came up just now ticks within one lease period (30s)
    clock.advance(29)
    # Then the lease is left for its worker to heartbeat
    assert await store.jobs.reap_expired_leases(clock.now(), 100, leader_since) == []
    assert (await store.jobs.get(job.id)).state is S.RUNNING
    # And once the grace is over it is reaped as before
    clock.advance(1)
    (reaped,) = await store.jobs.reap_expired_leases(clock.now(), 100, leader_since)
    assert (reaped.id, reaped.state) == (job.id, S.SCHEDULED)


async def test_replay_gives_dead_jobs_a_fresh_budget(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, queue="q", max_attempts=1)
    leased = await lease_one(store, clock, queue="q")
    await store.jobs.report("w1", [failed(leased)], clock.now())
    assert await store.jobs.replay_dead(DeadLetterSelector(queue="q"), clock.now()) == 1
    replayed = await lease_one(store, clock, queue="q")
    assert (replayed.id, replayed.attempt) == (job.id, 2)
    (after,) = await store.jobs.report("w1", [failed(replayed)], clock.now())
    assert after.state is S.DEAD


async def test_replay_by_id_of_a_live_job_fails_and_changes_nothing(store, clock) -> None:
    job = await submit(store, clock)
    with pytest.raises(FailedPrecondition):
        await store.jobs.replay_dead(DeadLetterSelector(ids=(job.id,)), clock.now())
    with pytest.raises(NotFound):
        await store.jobs.replay_dead(DeadLetterSelector(ids=("missing",)), clock.now())
    assert (await store.jobs.get(job.id)).state is S.QUEUED


async def test_discard_removes_dead_jobs_and_records_it(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, max_attempts=1)
    leased = await lease_one(store, clock)
    await store.jobs.report("w1", [failed(leased, retryable=False)], clock.now())
    assert await store.jobs.discard_dead(DeadLetterSelector(ids=(job.id,)), clock.now()) == 1
    assert await store.jobs.get(job.id) is None
    assert (await store.jobs.events(job.id))[-1].kind is EventKind.DISCARDED


async def test_retention_deletes_only_finished_jobs_past_it(store, clock) -> None:
    await register(store, clock)
    old = await submit(store, clock)
    leased = await lease_one(store, clock)
    await store.jobs.report("w1", [completed(leased)], clock.now())
    pending = await submit(store, clock)
    clock.advance(7 * 86400 + 1)
    assert await store.jobs.delete_finished(clock.now(), 100) == 1
    assert await store.jobs.get(old.id) is None
    assert await store.jobs.get(pending.id) is not None


# --- events, lists, queues, workers ----------------------------------------------------


async def test_every_transition_appends_an_event_in_order(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock)
    leased = await lease_one(store, clock)
    await store.jobs.report("w1", [completed(leased)], clock.now())
    events = await store.jobs.events(job.id)
    assert [(e.from_state, e.to_state, e.kind) for e in events] == [
        (None, S.QUEUED, EventKind.SUBMITTED),
        (S.QUEUED, S.RUNNING, EventKind.STARTED),
        (S.RUNNING, S.SUCCEEDED, EventKind.SUCCEEDED),
    ]
    assert len({e.id for e in events}) == 3
    assert [e.id for e in await store.events.unpublished(10)] == [e.id for e in events]


async def test_a_batch_submit_writes_each_jobs_submitted_event_in_batch_order(store, clock) -> None:
    # Given a batch of a job with a correlation id and trace context, a scheduled one and a
    # plain one
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    batch = [
        new_job(clock, correlation_id="c-1", trace_context=trace),
        new_job(clock, "later", delay=seconds(60)),
        new_job(clock, "plain"),
    ]
    # When it is submitted in one call
    results = await store.jobs.submit(batch, clock.now())
    # Then each job has its submitted event, with what it was submitted with and no more
    expected = [
        (S.QUEUED, {"type": "echo", "correlation_id": "c-1", "trace_context": trace}),
        (S.SCHEDULED, {"type": "later"}),
        (S.QUEUED, {"type": "plain"}),
    ]
    for result, (state, details) in zip(results, expected, strict=True):
        (event,) = await store.jobs.events(result.job.id)
        assert (event.kind, event.from_state, event.to_state) == (E.SUBMITTED, None, state)
        assert (event.queue, event.tenant) == (result.job.queue, result.job.tenant)
        assert event.at == clock.now() and event.attempt == 0 and event.details == details
        # UUIDv7 ids drawn after the job's, so they sort after it
        assert is_job_id(event.id) and event.id > result.job.id
    # And the outbox holds them in the batch's order
    outbox = await store.events.unpublished(10)
    assert [e.job_id for e in outbox] == [r.job.id for r in results]
    assert sorted(e.id for e in outbox) == [e.id for e in outbox]


async def test_published_events_leave_the_outbox(store, clock) -> None:
    await submit(store, clock)
    await submit(store, clock)
    first, second = await store.events.unpublished(10)
    await store.events.mark_published([first.id], clock.now())
    assert [e.id for e in await store.events.unpublished(10)] == [second.id]
    assert (await store.events.backlog())[0] == 1


async def finish_one(store: Store, clock: FixedClock) -> str:
    """A job submitted, started and succeeded now: three events."""
    job = await submit(store, clock)
    leased = await lease_one(store, clock)
    await store.jobs.report("w1", [completed(leased)], clock.now())
    return job.id


async def publish_all(store: Store, clock: FixedClock) -> None:
    await store.events.mark_published(
        [e.id for e in await store.events.unpublished(1000)], clock.now()
    )


async def test_pruning_deletes_old_published_events_in_batches_and_keeps_the_rest(
    store, clock
) -> None:
    # Given: three finished jobs and a live one, published, an hour and more ago; a finished
    # job whose events were never published; and a finished job from just now.
    await register(store, clock)
    old = [await finish_one(store, clock) for _ in range(3)]
    live = (await submit(store, clock, delay=seconds(86400))).id
    await publish_all(store, clock)
    unsent = await finish_one(store, clock)
    clock.advance(7200)
    young = await finish_one(store, clock)
    young_events = [e.id for e in await store.jobs.events(young)]
    await store.events.mark_published(young_events, clock.now())
    before = clock.now() - seconds(3600)

    # When: pruned in batches of 2, only published ones.
    batches = []
    while deleted := await store.events.prune(before, 2, unpublished=False):
        batches.append(deleted)

    # Then: the nine events of the old finished jobs went, two at a time.
    assert batches == [2, 2, 2, 2, 1]
    for job_id in old:
        assert await store.jobs.events(job_id) == []
    # And: a live job's history, unpublished events and younger events stay.
    assert [e.kind for e in await store.jobs.events(live)] == [EventKind.SUBMITTED]
    assert len(await store.jobs.events(unsent)) == 3
    assert len(await store.jobs.events(young)) == 3
    assert (await store.events.backlog())[0] == 3

    # When: no relay will ever send them, the unpublished old ones go too; the live job's stay.
    assert await store.events.prune(before, 10, unpublished=True) == 3
    assert await store.jobs.events(unsent) == []
    assert len(await store.jobs.events(live)) == 1
    assert (await store.events.backlog())[0] == 0


async def test_list_filters_and_pages_newest_first(store, clock) -> None:
    ids = [(await submit(store, clock, queue="q", type="t")).id for _ in range(5)]
    await submit(store, clock, queue="other")
    first = await store.jobs.page(JobFilter(queue="q"), 2, None)
    assert [j.id for j in first.jobs] == ids[::-1][:2]
    second = await store.jobs.page(JobFilter(queue="q"), 2, first.next_after)
    third = await store.jobs.page(JobFilter(queue="q"), 2, second.next_after)
    assert [j.id for j in second.jobs + third.jobs] == ids[::-1][2:]
    assert third.next_after is None
    queued = await store.jobs.page(JobFilter(states=(S.QUEUED,), type="t"), 10, None)
    assert len(queued.jobs) == 5


async def test_queue_create_update_and_conflicts(store, clock) -> None:
    from jobq.core.model import QueueConfig

    await store.queues.create(QueueConfig(name="emails", weight=2), clock.now())
    with pytest.raises(AlreadyExists):
        await store.queues.create(QueueConfig(name="emails"), clock.now())
    updated = await store.queues.update("emails", {"max_attempts": 7}, clock.now())
    assert (updated.weight, updated.max_attempts) == (2, 7)
    with pytest.raises(InvalidArgument):
        await store.queues.update("emails", {"weight": 0}, clock.now())
    assert (await store.queues.get("emails")).weight == 2
    with pytest.raises(NotFound):
        await store.queues.update("nope", {"weight": 2}, clock.now())


async def test_purge_cancels_pending_jobs_only(store, clock) -> None:
    await register(store, clock, queues=("q",))
    await submit(store, clock, queue="q")
    await submit(store, clock, queue="q", delay=seconds(60))
    await submit(store, clock, queue="q")
    running = await lease_one(store, clock, queue="q")
    assert await store.queues.purge("q", clock.now()) == 2
    (stats,) = await store.queues.stats("q", clock.now())
    assert stats.by_state["cancelled"] == 2
    assert stats.by_state["running"] == 1
    assert (await store.jobs.get(running.id)).state is S.RUNNING


async def test_purge_writes_a_cancelled_event_per_job_in_its_transaction(store, clock) -> None:
    # Given a queued job with a correlation id and trace context, and a scheduled one
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    queued = await submit(store, clock, queue="q", correlation_id="c-1", trace_context=trace)
    later = await submit(store, clock, queue="q", delay=seconds(60))
    clock.advance(1)
    # When the queue is purged
    assert await store.queues.purge("q", clock.now()) == 2
    # Then each job's history ends in the cancellation, from the state it was in
    for job, was, details in (
        (queued, S.QUEUED, {"correlation_id": "c-1", "trace_context": trace}),
        (later, S.SCHEDULED, {}),
    ):
        stored = await store.jobs.get(job.id)
        assert stored.state is S.CANCELLED and stored.finished_at == clock.now()
        *_, last = await store.jobs.events(job.id)
        assert (last.kind, last.from_state, last.to_state) == (E.CANCELLED, was, S.CANCELLED)
        assert last.at == clock.now() and last.attempt == 0
        assert last.details == details | {"reason": "queue purged"}
        assert is_job_id(last.id) and last.id != job.id
    # And the outbox holds the events, to publish
    unpublished = [e.job_id for e in await store.events.unpublished(100)]
    assert unpublished.count(queued.id) == 2 and unpublished.count(later.id) == 2


async def test_stats_count_jobs_by_state_and_age(store, clock) -> None:
    await submit(store, clock, queue="q")
    clock.advance(10)
    await submit(store, clock, queue="q", delay=seconds(5))
    (stats,) = await store.queues.stats("q", clock.now())
    assert stats.by_state["queued"] == 1
    assert stats.by_state["scheduled"] == 1
    assert stats.oldest_queued_age_seconds == pytest.approx(10)


async def test_unfinished_stats_leave_finished_jobs_uncounted(store, clock) -> None:
    # Given a queue with a finished job beside a queued and a running one...
    await register(store, clock, queues=("q",))
    await submit(store, clock, queue="q")
    await lease_one(store, clock, queue="q")
    await submit(store, clock, queue="q")
    await submit(store, clock, queue="q", delay=seconds(5))
    assert await store.queues.purge("q", clock.now()) == 2  # the pending two: cancelled
    await submit(store, clock, queue="q")
    # ...the unfinished counts (console, gauges) name no finished state at all.
    (live,) = await store.queues.stats("q", clock.now(), finished=False)
    assert live.by_state == {
        s.value: {"queued": 1, "running": 1}.get(s.value, 0) for s in S if s not in TERMINAL_STATES
    }
    (full,) = await store.queues.stats("q", clock.now())
    assert full.by_state["cancelled"] == 2 and full.by_state["queued"] == 1


async def test_workers_that_stop_heartbeating_are_listed_as_lost(store, clock) -> None:
    await register(store, clock, "w1")
    await register(store, clock, "w2")
    clock.advance(20)
    await store.jobs.heartbeat("w2", [], clock.now())
    clock.advance(20)
    states = {w.id: w.state for w in await store.workers.all(clock.now(), seconds(30))}
    assert states == {"w1": WorkerState.LOST, "w2": WorkerState.ACTIVE}


async def test_every_event_of_a_job_carries_its_correlation_id(store, clock) -> None:
    await register(store, clock)
    job = await submit(store, clock, correlation_id="req-77", max_attempts=2)
    leased = await lease_one(store, clock)
    await store.jobs.report("w1", [failed(leased)], clock.now())
    clock.advance(3600)
    await store.jobs.promote_due(clock.now(), 100)
    again = await lease_one(store, clock)
    clock.advance(31)
    await store.jobs.reap_expired_leases(clock.now(), 100)
    events = await store.jobs.events(job.id)
    assert len(events) == 6, [e.kind for e in events]
    assert {e.details.get("correlation_id") for e in events} == {"req-77"}
    assert again.attempt == 2
