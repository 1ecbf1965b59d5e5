"""Store-wide gauges, exported by one replica per cluster: the scheduler's leader.

Queue depth, paused queues, active workers and the outbox backlog are read from the
whole database, so every replica would see the same numbers. Exported by each, a
`sum()` (KEDA's query, a dashboard's total) would count them once per replica. Only
the leader publishes them; every other replica exports the families with no sample,
so HELP and TYPE stay in each scrape and `sum`, `max` and `count` all read one value.

Depth is only for the states a job waits or runs in (not `TERMINAL_STATES`): a count of
finished jobs is a retention detail, not work to scale for. Each such state is
exported for every queue the store knows, with 0 when empty, so a drained queue reads
0 rather than its last non-zero value.

Without Kafka the outbox is only kept (up to JQ_OUTBOX_RETENTION), never sent: its
backlog would only grow. The outbox gauges then carry no sample, and
`jq_outbox_relay_enabled` (0) says why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobq.core.model import QueueStats
from jobq.core.states import TERMINAL_STATES, JobState

WAITING_OR_RUNNING: tuple[str, ...] = tuple(s.value for s in JobState if s not in TERMINAL_STATES)


@dataclass(frozen=True)
class Snapshot:
    depth: dict[tuple[str, str], int]
    paused: dict[str, bool]
    workers_active: int
    # (backlog, age of the oldest unsent event in seconds); None: no relay, nothing is sent.
    outbox: tuple[int, float] | None


def snapshot(
    queues: Iterable[QueueStats],
    workers_active: int,
    outbox: tuple[int, dt.datetime | None] | None,
    now: dt.datetime,
) -> Snapshot:
    # Labelled by queue name, cluster-wide: tenants' queues of one name add up (and one
    # paused is shown as paused), so a second tenant's "emails" never hides the first's.
    depth: dict[tuple[str, str], int] = {}
    paused: dict[str, bool] = {}
    for queue in queues:
        paused[queue.queue] = paused.get(queue.queue, False) or queue.paused
        for state in WAITING_OR_RUNNING:
            key = (queue.queue, state)
            depth[key] = depth.get(key, 0) + queue.by_state.get(state, 0)
    sent = None
    if outbox is not None:
        backlog, oldest = outbox
        sent = (backlog, 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
    return Snapshot(depth=depth, paused=paused, workers_active=workers_active, outbox=sent)


class ClusterGauges(Collector):
    """Registered on a server's registry; `publish` as the leader, `withdraw` otherwise."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None

    def publish(self, snap: Snapshot) -> None:
        self._snapshot = snap

    def withdraw(self) -> None:
        self._snapshot = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families(None))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(self._snapshot))

    @staticmethod
    def _families(snap: Snapshot | None) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "jq_job_queue_depth",
            "Jobs waiting or running per queue and state (non-terminal states only; leader only)",
            labels=["queue", "state"],
        )
        paused = GaugeMetricFamily(
            "jq_queue_paused", "1 while a queue is paused, else 0 (leader only)", labels=["queue"]
        )
        workers = GaugeMetricFamily(
            "jq_workers_active", "Workers with a fresh heartbeat (leader only)", labels=[]
        )
        backlog = GaugeMetricFamily(
            "jq_outbox_backlog",
            "Job events not yet published (leader only; no sample without Kafka)",
            labels=[],
        )
        oldest = GaugeMetricFamily(
            "jq_outbox_oldest_age_seconds",
            "Age of the oldest unpublished job event (leader only; no sample without Kafka)",
            labels=[],
        )
        if snap is not None:
            for (queue, state), count in sorted(snap.depth.items()):
                depth.add_metric([queue, state], count)
            for queue, is_paused in sorted(snap.paused.items()):
                paused.add_metric([queue], 1 if is_paused else 0)
            workers.add_metric([], snap.workers_active)
            if snap.outbox is not None:
                backlog.add_metric([], snap.outbox[0])
                oldest.add_metric([], snap.outbox[1])
        yield from (depth, paused, workers, backlog, oldest)
