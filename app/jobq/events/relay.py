"""The outbox relay: job_events rows to Kafka, at least once, in order per job.

Each round reads the oldest unpublished rows (`published_at IS NULL ORDER BY seq`), produces
them with an idempotent producer (acks=all; key = job id; header jq-event-id), waits for every
delivery report, and marks published only the rows up to the first one that was not
delivered. So a crash between produce and mark re-sends at most that batch (duplicates,
which consumers drop by event id), and a row is never marked without having been delivered.

Why the reader keeps no position: on PostgreSQL an identity `seq` is taken at insert but
transactions commit in any order, so a row with a smaller seq can become visible after a
larger one. A reader that remembered "last seq published" would skip it forever. This one
always asks for every unpublished row in seq order, so a late-committing row is simply
picked up by the next round. Keep it that way.

Worker heartbeats are not outbox rows (one per worker every few seconds would swamp it):
every `heartbeat_interval` the leader's relay reads the workers table and produces one
`WorkerHeartbeat` per active or draining worker whose heartbeat moved since the last one
sent (key = worker id). At most once: nothing is retried, since the next summary replaces
a lost one. A consumer sees each live worker about once per interval, never a flood.

One relay publishes at a time: each round runs only while this replica holds the store's
leader lock. If the lock moves mid-round, two replicas may send the same rows: duplicates
again, never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from jobq.config import KafkaSettings
from jobq.core.clock import Clock
from jobq.core.errors import StoreUnavailable
from jobq.core.model import JobEvent, WorkerInfo, WorkerState
from jobq.events.admin import ensure_topics
from jobq.events.codec import EVENT_ID_HEADER, encode
from jobq.events.connection import kafka_config, producer_config
from jobq.events.metrics import RelayMetrics
from jobq.events.topics import WORKER_HEARTBEAT, TopicNames
from jobq.store.base import EventLog, LeaderLock, Store, WorkerRepository
from jobq.v1 import events_pb2

if TYPE_CHECKING:
    from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger("jobq.events")

_PENDING: Any = object()  # no delivery report yet


class EventRelay:
    def __init__(
        self,
        events: EventLog,
        leader: LeaderLock,
        producer: Producer,
        topics: TopicNames,
        clock: Clock,
        *,
        batch: int = 500,
        interval: float = 0.2,
        flush_timeout: float = 35.0,
        metrics: RelayMetrics | None = None,
        setup: Callable[[], object] | None = None,
        crash_after_produce: bool = False,
        workers: WorkerRepository | None = None,
        heartbeat_interval: float = 30.0,
    ) -> None:
        self._events = events
        self._leader = leader
        self._producer = producer
        self._topics = topics
        self._clock = clock
        self._batch = batch
        self._interval = interval
        self._flush_timeout = flush_timeout
        self._metrics = metrics
        self._setup = setup
        self._crash_after_produce = crash_after_produce
        self._workers = workers
        self._heartbeat_interval = dt.timedelta(seconds=heartbeat_interval)
        self._next_heartbeats: dt.datetime | None = None
        self._heartbeats_sent: dict[str, dt.datetime] = {}  # worker id -> last_heartbeat sent
        self._task: asyncio.Task[None] | None = None

    async def publish_once(self) -> int:
        """Publish one batch of the oldest unpublished events; return how many were marked."""
        events = await self._events.unpublished(self._batch)
        if not events:
            return 0
        delivered = await asyncio.to_thread(self._produce, events)
        if delivered and self._crash_after_produce:
            # JQ_TEST_FAULT=relay-crash-after-produce: die as a kill -9 would, in the window
            # the at-least-once guarantee is about (delivered, not yet marked).
            log.warning("test fault: SIGKILL after produce, before mark (%d events)", delivered)
            os.kill(os.getpid(), signal.SIGKILL)
        if delivered:
            await self.mark([e.id for e in events[:delivered]])
            if self._metrics is not None:
                for event in events[:delivered]:
                    self._metrics.published.labels(self._topics.for_kind(event.kind)).inc()
        if delivered < len(events):
            if self._metrics is not None:
                self._metrics.failures.inc()
            log.warning(
                "Kafka delivered %d of %d events; the rest are retried next round",
                delivered,
                len(events),
            )
        return delivered

    async def mark(self, event_ids: Sequence[str]) -> None:
        await self._events.mark_published(event_ids, self._clock.now())

    def _produce(self, events: Sequence[JobEvent]) -> int:
        """Produce the batch and wait for its reports (blocking: runs in a thread).

        Returns the length of the delivered prefix: marking stops at the first failure, so the
        next round re-sends from there in seq order and one job's events never overtake.
        """
        reports: list[Any] = [_PENDING] * len(events)

        def on_delivery(index: int, err: KafkaError | None, _msg: Message) -> None:
            reports[index] = err

        for index, event in enumerate(events):
            while True:
                try:
                    self._producer.produce(
                        self._topics.for_kind(event.kind),
                        key=event.job_id.encode(),
                        value=encode(event),
                        headers=[(EVENT_ID_HEADER, event.id.encode())],
                        on_delivery=functools.partial(on_delivery, index),
                    )
                    break
                except BufferError:  # the local queue is full: let reports drain it
                    self._producer.poll(0.1)
        self._producer.flush(self._flush_timeout)
        delivered = 0
        for report in reports:
            if report is not None:  # _PENDING or a KafkaError
                if report is not _PENDING:
                    log.warning("Kafka delivery failed: %s", report)
                break
            delivered += 1
        return delivered

    async def publish_heartbeats(self) -> int:
        """Produce a WorkerHeartbeat for each live worker heard from since the last one sent;
        return how many. At most once: delivery is not awaited, failures are only logged."""
        if self._workers is None:
            return 0
        now = self._clock.now()
        workers = await self._workers.all(now, self._heartbeat_interval)
        fresh = [
            w
            for w in workers
            if w.state in (WorkerState.ACTIVE, WorkerState.DRAINING)
            and self._heartbeats_sent.get(w.id) != w.last_heartbeat
        ]
        topic = self._topics.name(WORKER_HEARTBEAT)
        sent = 0
        for worker in fresh:
            try:
                self._producer.produce(
                    topic,
                    key=worker.id.encode(),
                    value=_heartbeat(worker).SerializeToString(),
                    on_delivery=_log_heartbeat_failure,
                )
            except BufferError:
                log.warning("worker heartbeats dropped: the producer's queue is full")
                break
            self._heartbeats_sent[worker.id] = worker.last_heartbeat
            sent += 1
        self._producer.poll(0)
        gone = self._heartbeats_sent.keys() - {w.id for w in workers}
        for worker_id in gone:
            del self._heartbeats_sent[worker_id]
        return sent

    async def _heartbeats_due(self) -> None:
        now = self._clock.now()
        if self._next_heartbeats is None or now >= self._next_heartbeats:
            self._next_heartbeats = now + self._heartbeat_interval
            await self.publish_heartbeats()

    async def run(self) -> None:
        """Publish while this replica is the leader, until cancelled."""
        await self.prepare()
        while True:
            full = False
            try:
                if await self._leader.try_acquire():
                    full = await self.publish_once() >= self._batch
                    await self._heartbeats_due()
            except StoreUnavailable as exc:
                log.warning("event relay: store unavailable: %s", exc)
            except Exception:
                log.exception("event relay round failed")
            if not full:
                await asyncio.sleep(self._interval)

    async def prepare(self) -> None:
        """Run the setup (topic creation) until it succeeds, without holding up the server."""
        while self._setup is not None:
            try:
                await asyncio.to_thread(self._setup)
                return
            except Exception as exc:
                log.warning("event relay: Kafka setup failed, retrying: %s", exc)
                await asyncio.sleep(max(self._interval, 1.0))

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="jobq-event-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Reports still outstanding are dropped: their rows stay unpublished and are re-sent.
        await asyncio.to_thread(self._producer.flush, 5.0)


def _heartbeat(worker: WorkerInfo) -> events_pb2.WorkerHeartbeat:
    message = events_pb2.WorkerHeartbeat(
        worker_id=worker.id,
        hostname=worker.hostname,
        queues=list(worker.queues),
        capacity=worker.capacity,
        running=worker.in_flight,
        tenant=worker.tenant,
    )
    message.at.FromDatetime(worker.last_heartbeat)
    return message


def _log_heartbeat_failure(err: KafkaError | None, _msg: Message) -> None:
    if err is not None:
        log.warning("worker heartbeat not delivered (not retried): %s", err)


def build_relay(
    settings: KafkaSettings,
    store: Store,
    clock: Clock,
    registry: CollectorRegistry,
    *,
    crash_after_produce: bool = False,
) -> EventRelay | None:
    """The relay for settings.kafka_*, or None when Kafka is not configured."""
    if not settings.kafka_bootstrap_servers:
        return None
    from confluent_kafka import Producer

    base = kafka_config(settings)
    topics = TopicNames(settings.kafka_topic_prefix)

    def create_topics() -> None:
        ensure_topics(
            base,
            topics.specs(),
            settings.kafka_topic_partitions,
            settings.kafka_replication_factor,
        )

    return EventRelay(
        store.events,
        store.leader,
        Producer(producer_config(settings, base)),
        topics,
        clock,
        batch=settings.kafka_relay_batch,
        interval=settings.kafka_relay_interval.total_seconds(),
        flush_timeout=settings.kafka_delivery_timeout.total_seconds() + 5,
        metrics=RelayMetrics(registry),
        setup=create_topics if settings.kafka_create_topics else None,
        crash_after_produce=crash_after_produce,
        workers=store.workers,
        heartbeat_interval=settings.kafka_heartbeat_interval.total_seconds(),
    )
