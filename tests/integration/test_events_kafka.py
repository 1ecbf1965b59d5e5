"""Job events through the outbox relay to a real Kafka broker (tests/harness/kafka.py).

Each test publishes under a topic prefix of its own, so they share the session's broker.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from prometheus_client import CollectorRegistry

from jobq.client import AsyncClient
from jobq.config import KafkaSettings, ServerSettings
from jobq.core.clock import FixedClock
from jobq.core.model import JobEvent, Outcome, OutcomeKind, QueueConfig
from jobq.events.connection import kafka_config, producer_config
from jobq.events.consumer import EventConsumer, ReceivedEvent
from jobq.events.relay import EventRelay, build_relay
from jobq.events.topics import TopicNames
from jobq.server.app import ServerApp
from jobq.store.base import DeadLetterSelector, Store
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY
from tests.contract.helpers import lease_of, new_job, register
from tests.harness.kafka import KafkaBroker

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def kafka_settings(broker: KafkaBroker, prefix: str, **values: object) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_topic_prefix=prefix,
        kafka_topic_partitions=3,
        **values,  # type: ignore[arg-type]
    )


def consume_all(
    broker: KafkaBroker, topics: TopicNames, expected: int, timeout: float = 60.0
) -> tuple[list[ReceivedEvent], int]:
    """Every distinct event on every job topic, in the order read; and the duplicates seen."""
    consumer = EventConsumer(
        Consumer(
            {
                "bootstrap.servers": broker.bootstrap_servers,
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
    )
    consumer.subscribe([s.name for s in topics.specs() if "job." in s.name])
    received: list[ReceivedEvent] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        # Read until every expected event came and then 2 s passed with nothing new, so
        # duplicates after the last new event are counted too.
        while time.monotonic() < deadline:
            got = consumer.poll(0.5)
            if got is not None:
                received.append(got)
                quiet_since = time.monotonic()
            elif len(received) >= expected and time.monotonic() - quiet_since > 2:
                break
        return received, consumer.duplicates
    finally:
        consumer.close()


async def recorded_events(store: Store, job_ids: Sequence[str]) -> dict[str, list[JobEvent]]:
    return {job_id: await store.jobs.events(job_id) for job_id in job_ids}


def assert_exactly_once_in_order(
    received: list[ReceivedEvent], recorded: dict[str, list[JobEvent]]
) -> None:
    rows = [e for events in recorded.values() for e in events]
    assert len({e.id for e in rows}) == len(rows)
    # Exactly one (deduplicated) event per recorded row, and nothing else.
    assert sorted(r.event.event_id for r in received) == sorted(e.id for e in rows)
    by_id = {e.id: e for e in rows}
    for got in received:
        row = by_id[got.event.event_id]
        assert (got.event.job_id, got.event.kind, got.event.sequence) == (
            row.job_id,
            row.kind.value,
            row.seq,
        )
    # In order per job within each topic (Kafka's ordering unit is the partition, and the
    # key is the job id) ...
    read_order: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for got in received:
        read_order[(got.topic, got.event.job_id)].append(got.event.sequence)
    for sequences in read_order.values():
        assert sequences == sorted(sequences)
    # ... and across topics `sequence` restores each job's history exactly as recorded.
    for job_id, events in recorded.items():
        published = sorted(
            (r.event for r in received if r.event.job_id == job_id), key=lambda e: e.sequence
        )
        assert [e.event_id for e in published] == [e.id for e in events]


async def drain(relay: EventRelay, store: Store) -> None:
    await relay.prepare()
    while await relay.publish_once():
        pass
    assert (await store.events.backlog())[0] == 0


async def drive_lifecycles(store: Store, clock: FixedClock, count: int) -> list[str]:
    """`count` jobs through every kind of transition; returns their ids.

    By index mod 10: 0-3 succeed; 4 fail once then succeed (retry); 5 fail permanently (dead),
    then half are replayed and succeed, half discarded; 6 lose their lease once (expiry
    reaped), then succeed; 7 are cancelled while running; 8 are released by a draining worker
    once, then succeed; 9 stay pending: a third cancelled, a third expire, a third delayed
    and promoted before they succeed.
    """
    await store.queues.create(QueueConfig(name="default", max_attempts=3), clock.now())
    worker = await register(store, clock, "w1")
    category: dict[str, int] = {}
    for start in range(0, count, 250):
        batch = []
        for i in range(start, min(count, start + 250)):
            extra: dict[str, object] = {}
            if i % 10 == 9 and i % 3 == 1:
                extra["ttl"] = dt.timedelta(seconds=5)
                extra["delay"] = dt.timedelta(seconds=30)
            elif i % 10 == 9 and i % 3 == 2:
                extra["delay"] = dt.timedelta(seconds=20)
            batch.append((i, new_job(clock, payload=f'{{"i": {i}}}', **extra)))
        results = await store.jobs.submit([job for _, job in batch], clock.now())
        for (i, _), result in zip(batch, results, strict=True):
            category[result.job.id] = i % 10
    pending = [j for j, c in category.items() if c == 9]
    for job_id in pending[::3]:
        await store.jobs.cancel(job_id, clock.now(), "not needed")

    failed_once: set[str] = set()
    expired_once: set[str] = set()
    released_once: set[str] = set()

    async def work_until_idle() -> None:
        for _ in range(200):
            clock.advance(0.5)
            await store.jobs.promote_due(clock.now(), 1000)
            await store.jobs.expire_unstarted(clock.now(), 1000)
            await store.jobs.reap_expired_leases(clock.now(), 1000)
            leased = await store.jobs.lease(worker, ["default"], 200, clock.now())
            if not leased:
                (stats,) = await store.queues.stats("default", clock.now())
                unfinished = ("scheduled", "queued", "running")
                if not any(stats.by_state.get(state) for state in unfinished):
                    return
                clock.advance(10)  # towards due retries and past lease timeouts
                continue
            outcomes: list[Outcome] = []
            release = []
            for job in leased:
                kind = category[job.id]
                if kind == 4 and job.id not in failed_once:
                    failed_once.add(job.id)
                    outcomes.append(Outcome(lease_of(job), OutcomeKind.FAILED, error="flaky"))
                elif kind == 5 and job.attempt == 1:
                    outcomes.append(
                        Outcome(lease_of(job), OutcomeKind.FAILED, error="bad", retryable=False)
                    )
                elif kind == 6 and job.id not in expired_once:
                    expired_once.add(job.id)  # silent: its lease runs out
                elif kind == 7:
                    await store.jobs.cancel(job.id, clock.now(), "stop it")
                    outcomes.append(Outcome(lease_of(job), OutcomeKind.CANCELLED))
                elif kind == 8 and job.id not in released_once:
                    released_once.add(job.id)
                    release.append(lease_of(job))
                else:
                    outcomes.append(Outcome(lease_of(job), OutcomeKind.COMPLETED, result='"ok"'))
            if outcomes:
                await store.jobs.report(worker, outcomes, clock.now())
            if release:
                await store.jobs.release(worker, release, clock.now())
        raise AssertionError("jobs still unfinished after 200 rounds")

    await work_until_idle()
    dead = [j for j, c in category.items() if c == 5]
    await store.jobs.replay_dead(DeadLetterSelector(ids=tuple(dead[::2])), clock.now())
    await store.jobs.discard_dead(DeadLetterSelector(ids=tuple(dead[1::2])), clock.now())
    await work_until_idle()
    return list(category)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    from tests.contract.conftest import BACKENDS

    made = await BACKENDS[request.param](request, tmp_path)
    await made.migrate()
    await made.open()
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.timeout(300)
async def test_given_2000_jobs_through_every_transition_then_each_event_is_published_once_in_order(
    kafka_broker: KafkaBroker, store: Store
) -> None:
    clock = FixedClock(T0)
    job_ids = await drive_lifecycles(store, clock, 2000)
    recorded = await recorded_events(store, job_ids)
    kinds = {e.kind.value for events in recorded.values() for e in events}
    assert kinds >= {
        "submitted",
        "promoted",
        "started",
        "succeeded",
        "retry_scheduled",
        "lease_expired",
        "dead_lettered",
        "replayed",
        "discarded",
        "cancel_requested",
        "cancelled",
        "expired",
        "released",
    }

    settings = kafka_settings(kafka_broker, f"t{uuid.uuid4().hex[:8]}.")
    relay = build_relay(settings, store, clock, CollectorRegistry())
    assert relay is not None
    await drain(relay, store)
    await relay.stop()

    expected = sum(len(e) for e in recorded.values())
    received, _ = await asyncio.to_thread(
        consume_all, kafka_broker, TopicNames(settings.kafka_topic_prefix), expected
    )
    assert_exactly_once_in_order(received, recorded)


class CrashBeforeMark(EventRelay):
    """A relay that dies after Kafka acknowledged a batch and before the outbox learns it."""

    async def mark(self, event_ids: Sequence[str]) -> None:
        raise SystemExit("killed between produce and mark")


async def test_given_a_relay_killed_between_produce_and_mark_then_a_restart_duplicates_only(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from tests.contract.conftest import sqlite_store

    store = await sqlite_store(None, tmp_path)  # type: ignore[arg-type]
    await store.migrate()
    await store.open()
    try:
        clock = FixedClock(T0)
        jobs = [new_job(clock, payload=f'{{"i": {i}}}') for i in range(300)]
        await store.jobs.submit(jobs, clock.now())
        settings = kafka_settings(kafka_broker, f"t{uuid.uuid4().hex[:8]}.")
        topics = TopicNames(settings.kafka_topic_prefix)
        base = kafka_config(settings)
        batch = 100

        def relay(cls: type[EventRelay]) -> EventRelay:
            return cls(
                store.events,
                store.leader,
                Producer(producer_config(settings, base)),
                topics,
                clock,
                batch=batch,
            )

        first = build_relay(settings, store, clock, CollectorRegistry())
        assert first is not None
        await first.prepare()  # topics
        crashed = relay(CrashBeforeMark)
        with pytest.raises(SystemExit):
            await crashed.publish_once()
        assert (await store.events.backlog())[0] == 300  # delivered, but not marked

        restarted = relay(EventRelay)
        await drain(restarted, store)

        recorded = await recorded_events(store, [j.id for j in jobs])
        received, duplicates = await asyncio.to_thread(consume_all, kafka_broker, topics, 300)
        assert_exactly_once_in_order(received, recorded)
        assert 0 < duplicates <= batch
    finally:
        await store.close()


@pytest.mark.timeout(300)
async def test_given_the_broker_down_under_load_then_submits_succeed_and_the_relay_catches_up(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    """The broker is stopped for 12 seconds, six times the producer's 2 s delivery timeout,
    so batches fail whole and are retried while submits keep succeeding.

    What the outage shows rests on its ratio to the delivery timeout (rounds of whole
    batches failing), not on its length: 60 s over 10 s showed no more. The run's broker is
    stopped and started again, as tests/e2e/test_consumer_outage.py does (tests isolate
    themselves by topic prefix): a broker of its own cost a format and a JVM start."""
    outage = 12.0
    delivery_timeout = dt.timedelta(seconds=2)
    broker = kafka_broker
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = ServerSettings(
        grpc_port=0,
        http_port=0,
        database_url=f"sqlite:///{tmp_path}/jobq.db",
        scheduler_interval=dt.timedelta(milliseconds=100),
        shutdown_grace=dt.timedelta(seconds=1),
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_topic_prefix=prefix,
        kafka_topic_partitions=3,
        kafka_delivery_timeout=delivery_timeout,
        kafka_relay_batch=200,
        auth_bootstrap_keys=BOOTSTRAP_KEYS,
    )
    app = ServerApp(settings)
    await app.start()
    job_ids: list[str] = []
    try:
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client:

            async def submit_for(seconds: float) -> None:
                end = time.monotonic() + seconds
                rng = random.Random(1)
                while time.monotonic() < end:
                    job = await client.submit("echo", {"n": rng.random()}, queue="load")
                    job_ids.append(job.id)
                    await asyncio.sleep(0.01)

            await submit_for(3)
            before = len(job_ids)
            await asyncio.to_thread(broker.stop)
            try:
                await submit_for(outage)
                during = len(job_ids) - before
                backlog_down, _ = await app.store.events.backlog()
            finally:  # the run's broker: the tests after this one need it up
                await asyncio.to_thread(broker.start)
            await submit_for(3)

        assert during > 100  # submits kept succeeding with the broker down
        assert backlog_down >= during  # ... and their events waited in the outbox
        deadline = time.monotonic() + 120
        while (  # noqa: ASYNC110 - polls the outbox; nothing signals its draining
            await app.store.events.backlog()
        )[0] and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert (await app.store.events.backlog())[0] == 0

        recorded = await recorded_events(app.store, job_ids)
        expected = sum(len(e) for e in recorded.values())
        received, _ = await asyncio.to_thread(consume_all, broker, TopicNames(prefix), expected)
        assert_exactly_once_in_order(received, recorded)
    finally:
        await app.stop()


async def test_jq_ctl_creates_the_topics_and_tails_decoded_events(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    from tests.contract.conftest import sqlite_store

    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "JQ_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "JQ_KAFKA_TOPIC_PREFIX": prefix,
        "JQ_KAFKA_TOPIC_PARTITIONS": "2",
    }
    jq_ctl = [sys.executable, "-m", "jobq.ctl.main"]

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*jq_ctl, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    created = await asyncio.to_thread(ctl, "events", "create-topics")
    assert created.returncode == 0, created.stderr
    assert f"{prefix}job.dead-lettered" in created.stdout
    again = await asyncio.to_thread(ctl, "events", "create-topics")
    assert "created 0 topics" in again.stdout

    store = await sqlite_store(None, tmp_path)  # type: ignore[arg-type]
    await store.migrate()
    await store.open()
    try:
        clock = FixedClock(T0)
        jobs = [new_job(clock) for _ in range(5)]
        await store.jobs.submit(jobs, clock.now())
        relay = build_relay(
            kafka_settings(kafka_broker, prefix, kafka_create_topics=False),
            store,
            clock,
            CollectorRegistry(),
        )
        assert relay is not None
        await drain(relay, store)
        await relay.stop()
    finally:
        await store.close()

    tailed = await asyncio.to_thread(
        ctl, "events", "tail", "--from-beginning", "--max", "5", "--idle", "20", "--json"
    )
    assert tailed.returncode == 0, tailed.stderr
    lines = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted(e["job_id"] for e in lines) == sorted(j.id for j in jobs)
    assert {(e["topic"], e["kind"], e["to_state"]) for e in lines} == {
        (f"{prefix}job.submitted", "submitted", "JOB_STATE_QUEUED")
    }
    text = await asyncio.to_thread(
        ctl, "events", "tail", "--topic", "job.submitted", "--from-beginning", "--max", "1"
    )
    assert "submitted" in text.stdout and "-> queued" in text.stdout


async def test_given_live_workers_then_the_relay_publishes_one_heartbeat_each_per_change(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from jobq.v1 import events_pb2
    from tests.contract.conftest import sqlite_store

    store = await sqlite_store(None, tmp_path)  # type: ignore[arg-type]
    await store.migrate()
    await store.open()
    try:
        clock = FixedClock(T0)
        await register(store, clock, "w1")
        await register(store, clock, "w2")
        settings = kafka_settings(kafka_broker, f"t{uuid.uuid4().hex[:8]}.")
        relay = build_relay(settings, store, clock, CollectorRegistry())
        assert relay is not None
        await relay.prepare()
        # Given two workers heard from: one summary each; none again until one heartbeats.
        assert await relay.publish_heartbeats() == 2
        assert await relay.publish_heartbeats() == 0
        clock.advance(5)
        await store.jobs.heartbeat("w1", [], clock.now())
        assert await relay.publish_heartbeats() == 1
        await relay.stop()  # flushes what is in flight
    finally:
        await store.close()

    def read_heartbeats() -> list[events_pb2.WorkerHeartbeat]:
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_broker.bootstrap_servers,
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([TopicNames(settings.kafka_topic_prefix).name("worker.heartbeat")])
        got: list[events_pb2.WorkerHeartbeat] = []
        deadline = time.monotonic() + 30
        try:
            while len(got) < 3 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    beat = events_pb2.WorkerHeartbeat()
                    beat.ParseFromString(message.value() or b"")
                    assert message.key() == beat.worker_id.encode()
                    got.append(beat)
        finally:
            consumer.close()
        return got

    beats = await asyncio.to_thread(read_heartbeats)
    assert sorted(b.worker_id for b in beats) == ["w1", "w1", "w2"]
    latest = max((b for b in beats if b.worker_id == "w1"), key=lambda b: b.at.ToDatetime())
    assert latest.at.ToDatetime() == (T0 + dt.timedelta(seconds=5)).replace(tzinfo=None)
    assert all(b.hostname == "test" and list(b.queues) == ["default"] for b in beats)
