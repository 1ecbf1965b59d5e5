"""Kafka consumers learn whose data each message is: JobEvent and WorkerHeartbeat carry the
tenant, through the real relay to a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from jobq.config import KafkaSettings
from jobq.core.clock import FixedClock
from jobq.core.model import WorkerInfo, WorkerState
from jobq.events.relay import build_relay
from jobq.events.topics import TopicNames
from jobq.v1 import events_pb2
from tests.contract.helpers import submit
from tests.harness.kafka import KafkaBroker
from tests.integration.test_events_kafka import T0, consume_all, drain


async def test_events_and_heartbeats_name_their_tenant(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from tests.contract.conftest import sqlite_store

    store = await sqlite_store(None, tmp_path)  # type: ignore[arg-type]
    await store.migrate()
    await store.open()
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = KafkaSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        kafka_topic_prefix=prefix,
        kafka_topic_partitions=1,
    )
    try:
        clock = FixedClock(T0)
        acme = await submit(store, clock, queue="emails", tenant="acme")
        globex = await submit(store, clock, queue="emails", tenant="globex")
        for worker_id, tenant in (("wa", "acme"), ("wg", "globex")):
            await store.workers.register(
                WorkerInfo(
                    id=worker_id,
                    hostname="h",
                    queues=("emails",),
                    capacity=1,
                    state=WorkerState.ACTIVE,
                    started_at=clock.now(),
                    last_heartbeat=clock.now(),
                    tenant=tenant,
                    subject=f"key-{tenant}",
                )
            )
        relay = build_relay(settings, store, clock, CollectorRegistry())
        assert relay is not None
        await drain(relay, store)
        assert await relay.publish_heartbeats() == 2
        await relay.stop()
    finally:
        await store.close()

    topics = TopicNames(prefix)
    received, _ = await asyncio.to_thread(consume_all, kafka_broker, topics, 2)
    assert {(r.event.job_id, r.event.tenant) for r in received} == {
        (acme.id, "acme"),
        (globex.id, "globex"),
    }

    def read_heartbeats() -> dict[str, str]:
        consumer = Consumer(
            {
                "bootstrap.servers": kafka_broker.bootstrap_servers,
                "group.id": f"test-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topics.name("worker.heartbeat")])
        got: dict[str, str] = {}
        deadline = time.monotonic() + 30
        try:
            while len(got) < 2 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    beat = events_pb2.WorkerHeartbeat()
                    beat.ParseFromString(message.value() or b"")
                    got[beat.worker_id] = beat.tenant
        finally:
            consumer.close()
        return got

    assert await asyncio.to_thread(read_heartbeats) == {"wa": "acme", "wg": "globex"}
