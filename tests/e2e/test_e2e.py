"""The queue as a user runs it: real jq-server, jq-worker and jq-ctl processes."""

from __future__ import annotations

import json
import signal
import time

import pytest

from jobq.core.states import JobState
from tests.auth_keys import SUBMITTER_KEY

from .conftest import BIN, Cluster, Proc, wait_until

pytestmark = pytest.mark.e2e


def job_state(client, job_id: str) -> JobState:
    return client.get(job_id).state


def test_submit_and_watch_to_success_with_jq_ctl(cluster: Cluster) -> None:
    cluster.start_server()
    cluster.start_worker()
    result = cluster.ctl("submit", "echo", '{"msg":"hi"}', "--watch")
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert 'result={"msg": "hi"}' in result.stdout


def test_progress_is_streamed_to_watch(cluster: Cluster) -> None:
    cluster.start_server()
    submitted = cluster.ctl_json("submit", "progress", '{"steps": 4, "step_seconds": 0.6}')
    # The watcher is up (it has printed the queued job) before any worker can start the
    # job, so a slow jq-ctl start on a loaded machine cannot miss the steps.
    watch = Proc(
        [
            str(BIN / "jq-ctl"),
            "--server",
            cluster.address,
            "watch",
            submitted["job"]["id"],
            "--json",
        ],
        cluster.env | {"JQ_TOKEN": SUBMITTER_KEY},
        cluster.tmp / "watch.log",
    )
    cluster.procs.append(watch)
    wait_until(lambda: '"queued"' in watch.output(), what="the watcher's first update")
    cluster.start_worker()
    assert watch.popen.wait(timeout=60) == 0, watch.output()
    seen = [json.loads(line) for line in watch.output().splitlines() if line.startswith("{")]
    progress = [u["progress"] for u in seen if u["state"] == "running"]
    assert len(set(progress)) >= 3, f"expected several progress steps, saw {progress}"
    assert seen[-1]["state"] == "succeeded"
    assert seen[-1]["progress"] == 1.0


def test_flaky_job_retries_then_succeeds(cluster: Cluster, client) -> None:
    cluster.start_server(JQ_DEFAULT_BACKOFF_BASE="100ms")
    cluster.start_worker()
    job = client.submit("flaky", {"failures": 2}, max_attempts=5)
    done = client.wait(job.id)
    assert (done.state, done.attempt) == (JobState.SUCCEEDED, 3)
    assert done.result == {"succeeded_on_attempt": 3}


def test_failures_dead_letter_and_replay_and_discard_with_jq_ctl(cluster: Cluster, client) -> None:
    cluster.start_server(JQ_DEFAULT_BACKOFF_BASE="50ms")
    cluster.start_worker("--queues", "payments")
    job = client.submit("fail", {}, queue="payments", max_attempts=2)
    assert client.wait(job.id).state is JobState.DEAD
    listed = cluster.ctl_json("dlq", "list", "--queue", "payments")
    assert [j["id"] for j in listed["jobs"]] == [job.id]
    assert cluster.ctl_json("dlq", "replay", "--queue", "payments") == {"replayed": 1}
    wait_until(lambda: job_state(client, job.id) is JobState.DEAD, what="replayed job to die")
    assert client.get(job.id).attempt == 4, "a replay grants a fresh budget of attempts"
    assert cluster.ctl_json("dlq", "discard", job.id, "--yes") == {"discarded": 1}
    missing = cluster.ctl("get", job.id)
    assert missing.returncode == 3
    assert missing.stderr.strip().startswith("jq-ctl: error: NotFound")


def test_sigkilled_worker_job_is_leased_again_and_completes(
    cluster: Cluster, client, operator
) -> None:
    cluster.start_server(JQ_DEFAULT_BACKOFF_BASE="100ms")
    operator.create_queue("critical", lease_timeout="2s")
    doomed = cluster.start_worker("--queues", "critical", name="doomed")
    job = client.submit("block", {"seconds": 3}, queue="critical")
    wait_until(lambda: job_state(client, job.id) is JobState.RUNNING, what="job to start")
    doomed.signal(signal.SIGKILL)
    doomed.wait(5)
    cluster.start_worker("--queues", "critical", name="rescuer")
    done = client.wait(job.id)
    assert done.state is JobState.SUCCEEDED
    assert done.attempt == 2
    assert done.result == {"attempt": 2}


def test_heartbeats_keep_a_long_job_leased_once(cluster: Cluster, client, operator) -> None:
    cluster.start_server()
    operator.create_queue("long", lease_timeout="1s")
    cluster.start_worker("--queues", "long")
    job = client.submit("block", {"seconds": 3.5}, queue="long")  # 3.5x its lease
    done = client.wait(job.id)
    assert (done.state, done.attempt) == (JobState.SUCCEEDED, 1)
    listed = cluster.ctl_json("list", "--queue", "long")["jobs"]
    assert [j["attempt"] for j in listed] == [1], "leased once: no lease expired on the way"


def test_cancel_running_job_reaches_the_task(cluster: Cluster, client, operator) -> None:
    cluster.start_server()
    operator.create_queue("slow", lease_timeout="1s")
    cluster.start_worker("--queues", "slow")
    job = client.submit("sleep", {"seconds": 60}, queue="slow")
    wait_until(lambda: job_state(client, job.id) is JobState.RUNNING, what="job to start")
    cancelled = cluster.ctl("cancel", job.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancellation requested" in cancelled.stdout
    done = client.wait(job.id)
    assert done.state is JobState.CANCELLED


def test_cancel_pending_job_never_runs(cluster: Cluster, client) -> None:
    cluster.start_server()
    job = client.submit("echo", {}, delay="1h")
    assert cluster.ctl_json("cancel", job.id)["state"] == "cancelled"
    cluster.start_worker()
    time.sleep(0.5)
    assert client.get(job.id).started_at is None


def test_timeout_fails_the_attempt(cluster: Cluster, client) -> None:
    cluster.start_server()
    cluster.start_worker()
    job = client.submit("sleep", {"seconds": 30}, timeout="300ms", max_attempts=1)
    done = client.wait(job.id)
    assert done.state is JobState.DEAD
    assert "timed out" in (done.last_error or "")


def test_paused_queue_holds_jobs_until_resumed_and_ttl_expires_them(cluster, client) -> None:
    cluster.start_server()
    cluster.start_worker("--queues", "batch")
    assert cluster.ctl("queues", "create", "batch").returncode == 0
    assert cluster.ctl("queues", "pause", "batch").returncode == 0
    kept = client.submit("echo", {"n": 1}, queue="batch")
    expiring = client.submit("echo", {"n": 2}, queue="batch", ttl="500ms")
    wait_until(lambda: job_state(client, expiring.id) is JobState.EXPIRED, what="TTL expiry")
    assert job_state(client, kept.id) is JobState.QUEUED
    assert cluster.ctl("queues", "resume", "batch").returncode == 0
    assert client.wait(kept.id).state is JobState.SUCCEEDED


def test_sigterm_lets_in_flight_jobs_finish(cluster: Cluster, client) -> None:
    cluster.start_server()
    worker = cluster.start_worker()
    started = cluster.tmp / "block-started"
    job = client.submit("block", {"seconds": 1.5, "started": str(started)})
    # RUNNING on the server is not yet running here: a lease still on its way when SIGTERM
    # lands is given back, not run, which is what the drain is for.
    wait_until(started.exists, what="the task to start in the worker")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert client.get(job.id).state is JobState.SUCCEEDED


def test_sigterm_past_the_grace_period_releases_jobs(cluster: Cluster, client) -> None:
    cluster.start_server()
    worker = cluster.start_worker(JQ_GRACE_PERIOD="300ms")
    job = client.submit("sleep", {"seconds": 30})
    wait_until(lambda: job_state(client, job.id) is JobState.RUNNING, what="job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    after = client.get(job.id)
    assert after.state is JobState.QUEUED, "a drained job goes back to its queue, never RUNNING"
    workers = cluster.ctl_json("workers", "list")
    assert [w["state"] for w in workers] == ["stopped"]


def test_submit_many_from_stdin_and_list_paging(cluster: Cluster) -> None:
    cluster.start_server()
    lines = "\n".join(json.dumps({"type": "echo", "payload": i}) for i in range(120))
    result = cluster.ctl("submit-many", "-", "--queue", "bulk", "--json", input=lines)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] == 120
    first = cluster.ctl_json("list", "--queue", "bulk", "--limit", "50")
    assert len(first["jobs"]) == 50 and first["next_page_token"]
    everything = cluster.ctl_json("list", "--queue", "bulk", "--limit", "50", "--all")
    assert len({j["id"] for j in everything["jobs"]}) == 120
    stats = cluster.ctl_json("queues", "stats", "bulk")
    assert stats[0]["by_state"]["queued"] == 120


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("submit", "echo", "{bad json"), 2, "payload is not valid JSON"),
        (("submit", "echo", "{}", "--priority", "500"), 2, "InvalidArgument: job.priority"),
        (("submit", "echo", "{}", "--queue", "No Such!"), 2, "InvalidArgument: job.queue"),
        (("get", "01900000-0000-7000-8000-000000000000"), 3, "NotFound"),
        (("queues", "pause", "missing"), 3, "NotFound"),
        (("list", "--state", "sleeping"), 2, "--state"),
    ],
)
def test_jq_ctl_errors_are_one_line_and_non_zero(cluster: Cluster, args, code, message) -> None:
    cluster.start_server()
    result = cluster.ctl(*args)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_jq_ctl_reports_an_unreachable_server(tmp_path) -> None:
    from .conftest import free_port

    lonely = Cluster(tmp_path)
    lonely.address = f"127.0.0.1:{free_port()}"
    result = lonely.ctl("list")
    assert result.returncode == 5
    assert "Unavailable" in result.stderr
