"""Outbox retention as the leader runs it (Scheduler._retain over a real store, both
backends): events older than JQ_OUTBOX_RETENTION go in batches, younger ones stay; with
Kafka configured only published ones go, without it every old one does; the server says
whether its relay is on."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jobq.config import ServerSettings
from jobq.core.clock import FixedClock
from jobq.observability.metrics import ServerMetrics
from jobq.server.scheduler import Scheduler
from jobq.server.service import JobqService
from jobq.store.base import Store
from tests.contract.conftest import BACKENDS
from tests.contract.helpers import register, submit
from tests.harness.kafka import KafkaBroker
from tests.integration.inprocess import running_server

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = 3600


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = await BACKENDS[request.param](request, tmp_path)
    await made.migrate()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


def leader_of(store: Store, clock: FixedClock, **settings: object) -> Scheduler:
    values: dict[str, object] = {"outbox_retention": "1h", "scheduler_batch": 2} | settings
    service = JobqService(store, clock, ServerSettings(**values), ServerMetrics())  # type: ignore[arg-type]
    scheduler = Scheduler(service)
    scheduler._leader = True  # what _lead_and_tick decides; retention runs only as the leader
    return scheduler


async def finished_jobs(store: Store, clock: FixedClock, count: int) -> list[str]:
    """`count` jobs cancelled now: two events each (submitted, cancelled), both finished."""
    ids = []
    for _ in range(count):
        job = await submit(store, clock)
        await store.jobs.cancel(job.id, clock.now(), "test")
        ids.append(job.id)
    return ids


async def events_of(store: Store, job_ids: list[str]) -> int:
    return sum([len(await store.jobs.events(j)) for j in job_ids])


def pruned(scheduler: Scheduler) -> float:
    value = scheduler._service.metrics.registry.get_sample_value("jq_outbox_events_pruned_total")
    return float(value or 0)


async def test_given_kafka_then_published_events_past_retention_go_in_batches(
    store: Store,
) -> None:
    clock = FixedClock(T0)
    await register(store, clock)
    # Given: five finished jobs two hours ago, published; two whose events were never sent;
    # and three from just now, published.
    old = await finished_jobs(store, clock, 5)
    unsent_since = clock.now()
    await store.events.mark_published(
        [e.id for e in await store.events.unpublished(100)], clock.now()
    )
    unsent = await finished_jobs(store, clock, 2)
    clock.advance(2 * HOUR)
    young = await finished_jobs(store, clock, 3)
    await store.events.mark_published(
        [e.id for j in young for e in await store.jobs.events(j)], clock.now()
    )
    scheduler = leader_of(store, clock, kafka_bootstrap_servers="127.0.0.1:9")

    # When: the leader's retention runs (JQ_OUTBOX_RETENTION=1h, batches of 2).
    await scheduler._retain()

    # Then: the old published events are gone, the unsent and young ones stay.
    assert await events_of(store, old) == 0
    assert pruned(scheduler) == 10
    assert await events_of(store, unsent) == 4
    assert (await store.events.backlog()) == (4, unsent_since)
    assert await events_of(store, young) == 6


async def test_given_no_kafka_then_every_event_past_retention_goes(store: Store) -> None:
    clock = FixedClock(T0)
    # Given: no relay, so nothing is ever published: three old finished jobs, one young.
    old = await finished_jobs(store, clock, 3)
    clock.advance(2 * HOUR)
    young = await finished_jobs(store, clock, 1)
    scheduler = leader_of(store, clock)

    await scheduler._retain()

    # Then: the outbox holds only what is younger than the retention.
    assert await events_of(store, old) == 0
    assert await events_of(store, young) == 2
    assert (await store.events.backlog())[0] == 2
    assert pruned(scheduler) == 6


async def test_the_server_reports_whether_its_outbox_relay_is_on(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    async with running_server(tmp_path) as server:
        registry = server.metrics.registry
        assert registry.get_sample_value("jq_outbox_relay_enabled") == 0
    kafka = {
        "kafka_bootstrap_servers": kafka_broker.bootstrap_servers,
        "kafka_topic_prefix": f"t{uuid.uuid4().hex[:8]}.",
        "kafka_topic_partitions": 1,
    }
    async with running_server(tmp_path, **kafka) as server:
        assert server.metrics.registry.get_sample_value("jq_outbox_relay_enabled") == 1
