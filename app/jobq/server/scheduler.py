"""The server's background loops: promote due jobs, reap expired leases, expire, retain.

Singleton work: on the embedded store there is one server; the PostgreSQL backend runs
this under a leader lock so that one replica at a time does it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from jobq.core.errors import StoreUnavailable
from jobq.server.schedules import ScheduleService
from jobq.server.service import JobqService

log = logging.getLogger("jobq.scheduler")

OBSERVE_EVERY = 5.0


class Scheduler:
    def __init__(self, service: JobqService, schedules: ScheduleService | None = None) -> None:
        self._service = service
        self._schedules = schedules
        self._settings = service.settings
        self._tasks: list[asyncio.Task[None]] = []
        self._leader = False
        self._leader_since: dt.datetime | None = None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._every(
                    self._settings.scheduler_interval.total_seconds(), self._lead_and_tick, "tick"
                )
            ),
            asyncio.create_task(
                self._every(
                    self._settings.scheduler_interval.total_seconds(), self._fire, "schedules"
                )
            ),
            asyncio.create_task(self._every(OBSERVE_EVERY, self._observe, "observe")),
            asyncio.create_task(
                self._every(
                    self._settings.retention_interval.total_seconds(), self._retain, "retention"
                )
            ),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _every(self, seconds: float, work: object, name: str) -> None:
        assert callable(work)
        while True:
            try:
                await work()
            except StoreUnavailable as exc:
                log.warning("scheduler %s: store unavailable: %s", name, exc)
            except Exception:
                log.exception("scheduler %s failed", name)
            _stop_if_cancelled()
            await asyncio.sleep(seconds)

    async def _lead_and_tick(self) -> None:
        """Try the leader lock, publish the outcome as jq_leader, and tick only as the leader.

        The lock is tried here alone, once per tick, so one coroutine owns its session;
        retention reads the outcome instead of trying again.
        """
        leader = False
        try:
            leader = await self._service.store.leader.try_acquire()
        finally:
            if leader and not self._leader:
                self._leader_since = self._service.clock.now()
            self._leader = leader
            self._service.metrics.leader.set(1 if leader else 0)
        if self._leader:
            # A new leader knows nothing of the heartbeats its predecessor (or its own last
            # life) missed while down: it reaps nothing for one lease period (ADR 0007).
            await self._service.tick(self._leader_since)

    async def _fire(self) -> None:
        """Fire due schedules, as the leader only (its own loop, so that a slow tick and a
        slow fire do not wait on each other). A replica that lost the lock without knowing
        it yet may still fire: the idempotency key and the compare-and-set keep that to one
        job per fire time (ADR 0014)."""
        if self._leader and self._schedules is not None:
            await self._schedules.fire_due()

    async def _observe(self) -> None:
        """The store-wide gauges and in-flight counters come from the leader alone; a
        replica that is not (or no longer) the leader withdraws its samples, so sum() over
        replicas counts them once."""
        if self._leader:
            await self._service.observe()
        else:
            self._service.metrics.withdraw_leader_gauges()

    async def _retain(self) -> None:
        """Delete finished jobs and old job events past retention in small batches,
        yielding between them."""
        if not self._leader:
            return
        batch = self._settings.scheduler_batch
        while (  # noqa: ASYNC110 - the sleep spaces batches out; it waits for nothing
            await self._service.store.jobs.delete_finished(self._service.clock.now(), batch)
            >= batch
        ):
            await asyncio.sleep(0.05)
        await self._prune_events(batch)

    async def _prune_events(self, batch: int) -> None:
        """Outbox retention: events older than JQ_OUTBOX_RETENTION. With Kafka configured only
        published ones go (an unsent event waits for the relay however old); without, no
        relay will ever send them, so they are kept only up to the retention."""
        relay_off = not self._settings.kafka_bootstrap_servers
        before = self._service.clock.now() - self._settings.outbox_retention
        while pruned := await self._service.store.events.prune(
            before, batch, unpublished=relay_off
        ):
            self._service.metrics.outbox_pruned.inc(pruned)
            if pruned < batch:
                return
            await asyncio.sleep(0.05)


def _stop_if_cancelled() -> None:
    """A driver may turn a cancellation in flight into its own error (psycopg: the query was
    cancelled) or swallow it; then the loop must still stop, not sleep out a whole interval
    (a minute of JQ_RETENTION_INTERVAL by default) before it sees stop()."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
