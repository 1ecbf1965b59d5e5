"""The store-wide gauges on two real jq-server replicas of one PostgreSQL: only the leader
has samples, so a sum over replicas (KEDA's query) reads the real depth; depth covers the
waiting and running states only; no `_created` series; without Kafka the outbox gauges
carry no sample and jq_outbox_relay_enabled says why. Read from real scrapes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobq import AsyncClient
from jobq.core.states import TERMINAL_STATES, JobState
from tests.auth_keys import SUBMITTER_KEY
from tests.e2e.conftest import wait_until
from tests.e2e.replicas import Replicas, Server
from tests.http import http_get

pytestmark = pytest.mark.e2e

QUEUED = 7


@pytest.fixture
def replicas(tmp_path: Path, pg_databases: Any) -> Iterator[Replicas]:
    made = Replicas(tmp_path, str(pg_databases.create()))
    try:
        yield made
    finally:
        made.stop()


def scrape(server: Server) -> str:
    got = http_get(server.http_port, "/metrics")
    assert got is not None and got[0] == 200
    return got[1]


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


async def submit(address: str) -> None:
    async with AsyncClient(address, token=SUBMITTER_KEY) as client:
        for n in range(QUEUED):
            await client.submit("gauges.nobody-runs-this", {"n": n}, queue="gauges")


def queued_sum(servers: list[Server]) -> float:
    """What KEDA's sum() over every replica's series reads."""
    return sum(
        value
        for server in servers
        for labels, value in samples(scrape(server), "jq_job_queue_depth")
        if labels == {"queue": "gauges", "state": "queued"}
    )


def test_only_the_leader_exports_store_wide_gauges_so_a_sum_reads_the_real_depth(
    replicas: Replicas,
) -> None:
    a, b = replicas.start_server("a"), replicas.start_server("b")
    asyncio.run(submit(a.address))
    servers = [a, b]
    # Given 7 queued jobs and two replicas, once the leader's gauges refresh
    wait_until(lambda: queued_sum(servers) == QUEUED, timeout=30, interval=0.5, what="depth")
    texts = {s.name: scrape(s) for s in servers}
    (leader,) = [s for s in servers if samples(texts[s.name], "jq_leader")[0][1] == 1]
    (other,) = [s for s in servers if s is not leader]
    # Then the leader alone has samples; the other declares the families, with none
    for name in ("jq_job_queue_depth", "jq_queue_paused", "jq_workers_active"):
        assert samples(texts[leader.name], name), name
        assert not samples(texts[other.name], name), name
        assert f"# TYPE {name} gauge" in texts[other.name]
    # And depth is only for states a job waits or runs in (scheduled, queued, running and a
    # workflow node's waiting), each present (0 when empty): finished jobs are not depth
    states = {labels["state"] for labels, _ in samples(texts[leader.name], "jq_job_queue_depth")}
    assert states == {s.value for s in JobState} - {s.value for s in TERMINAL_STATES}
    assert {"scheduled", "queued", "running", "waiting"} <= states
    for text in texts.values():
        # No `_created` series: they are timestamps that read like counts
        assert "_created" not in text
        # Without Kafka nothing sends the outbox: its gauges say nothing, the relay flag 0
        assert not samples(text, "jq_outbox_backlog")
        assert not samples(text, "jq_outbox_oldest_age_seconds")
        assert samples(text, "jq_outbox_relay_enabled") == [({}, 0.0)]
