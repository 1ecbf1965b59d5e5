"""Real jq-result-processor and jq-metrics-aggregator processes through a 60 s broker outage
while jobs run, and a result processor SIGKILLed between writing its lines and committing
(JQ_TEST_FAULT=result-processor-crash-after-write): both consumers stay up, report not
ready while the broker is away, come back ready, and the result file holds every finished
job exactly once."""

from __future__ import annotations

import collections
import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import BIN, Cluster, Proc, free_port, wait_until
from tests.harness.kafka import KafkaBroker
from tests.http import http_get
from tests.integration.test_metrics_scrape import assert_exports_contract, check_with_promtool
from tests.ops.metric_contract import METRICS_AGGREGATOR_JOB

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(360)]

# Longer than the ~12 s after which the processor used to die, well past librdkafka's retries.
OUTAGE = 25.0
PARTITIONS = 3


@pytest.fixture
def sqlite_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """One backend only: what is under test is the consumers, not the store."""
    made = Cluster(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def readyz(port: int) -> int | None:
    """The /readyz status code, or None when nothing answers."""
    got = http_get(port, "/readyz")
    return None if got is None else got[0]


def samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class Consumers:
    """The two consumer processes of the test, on ports and under a group name of their own."""

    def __init__(self, cluster: Cluster, broker: KafkaBroker, prefix: str) -> None:
        self.cluster = cluster
        self.output = cluster.tmp / "results.jsonl"
        self.group = f"jobq-result-processor-{prefix}"
        self.processor_port, self.aggregator_port = free_port(), free_port()
        self.env = cluster.env | {
            "JQ_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "JQ_KAFKA_TOPIC_PREFIX": prefix,
            "JQ_RESULT_PROCESSOR_GROUP": self.group,
            "JQ_RESULT_PROCESSOR_HTTP_PORT": str(self.processor_port),
            "JQ_RESULT_PROCESSOR_OUTPUT": str(self.output),
            "JQ_RESULT_PROCESSOR_LAG_INTERVAL": "1s",
            # The broker's minimum: a killed member's partitions move on after 6 s, not 45.
            "JQ_KAFKA_CONSUMER_SESSION_TIMEOUT": "6s",
            "JQ_METRICS_AGGREGATOR_GROUP": f"jobq-metrics-aggregator-{prefix}",
            "JQ_METRICS_AGGREGATOR_HTTP_PORT": str(self.aggregator_port),
            "JQ_METRICS_AGGREGATOR_LAG_INTERVAL": "1s",
        }
        self.runs = 0

    def start_processor(self, **env: str) -> Proc:
        self.runs += 1
        proc = Proc(
            [str(BIN / "jq-result-processor")],
            self.env | env,
            self.cluster.tmp / f"result-processor-{self.runs}.log",
        )
        self.cluster.procs.append(proc)
        return proc

    def start_aggregator(self) -> Proc:
        proc = Proc(
            [str(BIN / "jq-metrics-aggregator")],
            self.env,
            self.cluster.tmp / "metrics-aggregator.log",
        )
        self.cluster.procs.append(proc)
        return proc

    def all_ready(self) -> bool:
        return readyz(self.processor_port) == 200 and readyz(self.aggregator_port) == 200

    def succeeded_counted(self) -> float:
        return sum(
            v
            for labels, v in samples(self.aggregator_port, "jq_cluster_jobs_total")
            if labels["outcome"] == "succeeded"
        )

    def committed(self, broker: KafkaBroker, prefix: str) -> int:
        """The result processor group's committed offsets, summed over its partitions."""
        reader = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": self.group})
        try:
            partitions = [
                TopicPartition(f"{prefix}{topic}", p)
                for topic in ("job.completed", "job.dead-lettered")
                for p in range(PARTITIONS)
            ]
            return sum(max(0, tp.offset) for tp in reader.committed(partitions, timeout=10))
        finally:
            reader.close()


def submit(cluster: Cluster, count: int, start: int) -> list[str]:
    with cluster.client() as client:
        made = client.submit_many({"type": "echo", "payload": start + i} for i in range(count))
    return [m.job.id for m in made]


def test_given_a_broker_outage_and_a_kill_then_consumers_recover_and_write_each_job_once(
    sqlite_cluster: Cluster, kafka_broker: KafkaBroker
) -> None:
    cluster = sqlite_cluster
    prefix = f"t{uuid.uuid4().hex[:8]}."
    cluster.start_server(
        JQ_KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        JQ_KAFKA_TOPIC_PREFIX=prefix,
        JQ_KAFKA_TOPIC_PARTITIONS=str(PARTITIONS),
    )
    cluster.start_worker()
    consumers = Consumers(cluster, kafka_broker, prefix)
    processor, aggregator = consumers.start_processor(), consumers.start_aggregator()
    wait_until(consumers.all_ready, timeout=60, interval=0.5, what="both consumers ready")

    # Given: jobs finished and written while the broker is up.
    jobs = submit(cluster, 40, 0)
    wait_until(
        lambda: len(lines(consumers.output)) == 40, timeout=60, interval=0.5, what="40 lines"
    )

    # When: the broker stops for OUTAGE seconds while more jobs are submitted and run.
    kafka_broker.stop()
    try:
        stopped = time.monotonic()
        jobs += submit(cluster, 40, 40)
        wait_until(
            lambda: (
                readyz(consumers.processor_port) == 503 and readyz(consumers.aggregator_port) == 503
            ),
            timeout=45,
            interval=0.5,
            what="both consumers not ready",
        )
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        # Then: both still run through the whole outage (the processor used to die in ~12 s).
        assert processor.popen.poll() is None, processor.output()
        assert aggregator.popen.poll() is None, aggregator.output()
    finally:
        kafka_broker.start()

    # And: both come back ready, and everything finished during the outage is written.
    wait_until(consumers.all_ready, timeout=90, interval=0.5, what="both ready again")
    wait_until(
        lambda: len(lines(consumers.output)) >= 80, timeout=90, interval=0.5, what="80 lines"
    )
    wait_until(
        lambda: consumers.succeeded_counted() >= 80, timeout=60, interval=0.5, what="aggregated"
    )
    assert processor.popen.poll() is None and aggregator.popen.poll() is None

    # When: the processor stops, more jobs finish, and its successor is SIGKILLed after
    # writing a batch's lines and before committing their offsets.
    processor.stop()
    assert processor.popen.returncode == 0, processor.output()
    jobs += submit(cluster, 40, 80)
    wait_until(
        lambda: consumers.succeeded_counted() >= 120, timeout=60, interval=0.5, what="120 done"
    )
    committed = consumers.committed(kafka_broker, prefix)
    crashing = consumers.start_processor(JQ_TEST_FAULT="result-processor-crash-after-write")
    assert crashing.wait(60) == -signal.SIGKILL, crashing.output()
    written_before_kill = len(lines(consumers.output))
    assert written_before_kill > 80  # lines of the batch it never committed
    assert consumers.committed(kafka_broker, prefix) == committed

    # Then: a restart is sent those events again and drops them: every job exactly once.
    consumers.start_processor()
    wait_until(
        lambda: readyz(consumers.processor_port) == 200, timeout=60, interval=0.5, what="ready"
    )
    wait_until(
        lambda: consumers.committed(kafka_broker, prefix) >= committed + 120 - 80,
        timeout=60,
        interval=0.5,
        what="the restart commits past the batch",
    )
    written = lines(consumers.output)
    by_job = collections.Counter(str(w["job_id"]) for w in written)
    assert sorted(by_job) == sorted(jobs)
    assert set(by_job.values()) == {1}, [j for j, n in by_job.items() if n > 1]
    assert len({w["event_id"] for w in written}) == len(written) == 120
    assert all(w["outcome"] == "succeeded" for w in written)

    # And: the aggregator's cluster-wide metrics count every job (at least once) and time them.
    with urllib.request.urlopen(f"http://127.0.0.1:{consumers.aggregator_port}/metrics") as r:
        text = r.read().decode()
    check_with_promtool(text)
    assert_exports_contract(text, METRICS_AGGREGATOR_JOB)
    counted = {
        labels["outcome"]: v
        for labels, v in samples(consumers.aggregator_port, "jq_cluster_jobs_total")
        if labels["queue"] == "default"
    }
    assert all(counted[o] >= 120 for o in ("submitted", "started", "succeeded")), counted
    for histogram in ("jq_cluster_job_submit_to_start_seconds", "jq_cluster_job_run_seconds"):
        (count,) = [v for _, v in samples(consumers.aggregator_port, f"{histogram}_count")]
        assert count >= 120, histogram

    # And: SIGTERM stops the aggregator cleanly (before its 42 partitions' lag refresh was
    # quick, it was still running when Proc.stop's wait ran out and SIGKILLed it).
    aggregator.stop()
    assert aggregator.popen.returncode == 0, aggregator.output()
