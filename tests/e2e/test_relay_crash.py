"""A real jq-server SIGKILLed between Kafka's acknowledgement and the outbox mark
(JQ_TEST_FAULT=relay-crash-after-produce), then a second server without the fault:
duplicates only, at most one batch, nothing lost."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest

from jobq.config import ServerSettings, sqlite_path
from jobq.core.model import JobEvent, QueueConfig
from jobq.events.topics import TopicNames
from jobq.server.app import build_store
from jobq.store.base import Store
from jobq.store.sqlite import SqliteStore
from tests.e2e.conftest import BIN, Cluster, Proc, wait_until
from tests.harness.kafka import KafkaBroker
from tests.integration.test_events_kafka import (
    assert_exactly_once_in_order,
    consume_all,
    recorded_events,
)

pytestmark = pytest.mark.e2e

JOBS, BATCH = 300, 100


def open_store(cluster: Cluster) -> Store:
    """The cluster's own database, read directly, whatever its backend."""
    if cluster.database.backend == "sqlite":
        # Beside the server that holds the file: an inspector, not a second server.
        return SqliteStore(
            sqlite_path(cluster.database.url), QueueConfig(name="default"), exclusive=False
        )
    return build_store(
        ServerSettings(
            database_url=cluster.database.url, database_direct_url=cluster.database.direct_url
        )
    )


def backlog(cluster: Cluster) -> int:
    async def read() -> int:
        store = open_store(cluster)
        await store.open()
        try:
            return (await store.events.backlog())[0]
        finally:
            await store.close()

    return asyncio.run(read())


def test_given_a_server_sigkilled_between_produce_and_mark_then_a_restart_sends_duplicates_only(
    cluster: Cluster, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    # Given: 300 jobs whose events wait in the outbox (the first server has no Kafka).
    first = cluster.start_server()
    with cluster.client() as client:
        jobs = client.submit_many({"type": "echo", "payload": i} for i in range(JOBS))
    first.stop()
    assert backlog(cluster) == JOBS

    prefix = f"t{uuid.uuid4().hex[:8]}."
    kafka = {
        "JQ_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "JQ_KAFKA_TOPIC_PREFIX": prefix,
        "JQ_KAFKA_TOPIC_PARTITIONS": "3",
        "JQ_KAFKA_RELAY_BATCH": str(BATCH),
    }
    # When: a server with the fault publishes its first batch and kills itself before marking.
    crashing = Proc(
        [str(BIN / "jq-server")],
        cluster.env | kafka | {"JQ_TEST_FAULT": "relay-crash-after-produce"},
        tmp_path / "crashing-server.log",
    )
    cluster.procs.append(crashing)
    assert crashing.wait(60) == -signal.SIGKILL, crashing.output()
    assert "SIGKILL after produce, before mark (100 events)" in crashing.output()
    assert backlog(cluster) == JOBS  # delivered to Kafka, but nothing marked

    # ... and a server without it takes over.
    cluster.start_server(**kafka)
    wait_until(lambda: backlog(cluster) == 0, timeout=60, interval=0.5, what="outbox drained")

    # Then: every event exactly once after dedupe, in order, and at most one batch re-sent.
    store_events = asyncio.run(_recorded(cluster, [j.job.id for j in jobs]))
    received, duplicates = consume_all(kafka_broker, TopicNames(prefix), JOBS)
    assert_exactly_once_in_order(received, store_events)
    assert 0 < duplicates <= BATCH


async def _recorded(cluster: Cluster, job_ids: list[str]) -> dict[str, list[JobEvent]]:
    store = open_store(cluster)
    await store.open()
    try:
        return await recorded_events(store, job_ids)
    finally:
        await store.close()
