"""The lease dispatcher: which queues a lease call fills from first, and what it may start.

Fair dispatch: queues are ordered by a stride scheduler over (tenant, queue) flows
(jobq.core.scheduling.FairShare) from tenant weights (JQ_TENANT_WEIGHTS) and queue weights,
kept per replica between lease calls. The store locks candidates and counts the caps itself
(exact, in the lease transaction); this decides the rates for the whole batch in one
coordination call (one Redis script), and counts what was held back. With Redis down it
decides from local buckets, each replica taking its share of every rate: the rate divided
by the replicas that leased with limits in the last REPLICA_TTL seconds, as the last
answer from Redis counted them (ADR 0017).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence, Set

from jobq.coord.base import RateAdmission
from jobq.coord.guard import GuardedCoordinator
from jobq.coord.memory import MemoryCoordinator
from jobq.core.limits import Candidate, RateBucket, rate_buckets
from jobq.core.model import QueueConfig
from jobq.core.scheduling import FairShare, Flow
from jobq.observability.metrics import ServerMetrics

__all__ = ["REPLICA_TTL", "Dispatcher"]

log = logging.getLogger("jobq.dispatch")

# A replica counts as leasing for this long after its last limited lease.
REPLICA_TTL = 30.0
# A lease that found only jobs held back by a rate looks again this soon: a bucket refills
# with time, and nothing announces it the way a submit wakes waiting leases.
RATE_RECHECK = 0.05


class Dispatcher:
    def __init__(
        self,
        guarded: GuardedCoordinator,
        metrics: ServerMetrics,
        *,
        tenant_weights: Mapping[str, int] | None = None,
        tenant_caps: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._guarded = guarded
        self._fair = FairShare(tenant_weights)
        self._tenant_caps = dict(tenant_caps or {})
        self._metrics = metrics
        self._local = MemoryCoordinator(clock)
        self.replica = uuid.uuid4().hex
        self.replicas = 1  # as last counted by the shared backend
        self.local = False
        self._clock = clock
        self._rate_refused_at = -math.inf
        metrics.rate_limit_local.set(0)

    async def admit(
        self, candidates: Sequence[tuple[Candidate, QueueConfig]], limit: int
    ) -> list[int]:
        buckets: list[RateBucket] = []
        index: dict[str, int] = {}
        wants: list[tuple[int, ...]] = []
        for candidate, queue in candidates:
            drawn = []
            for bucket in rate_buckets(candidate, queue):
                if bucket.key not in index:
                    index[bucket.key] = len(buckets)
                    buckets.append(bucket)
                drawn.append(index[bucket.key])
            wants.append(tuple(drawn))
        if not buckets:
            return list(range(min(limit, len(candidates))))
        backend = self._guarded.backend

        async def shared() -> RateAdmission:
            return await backend.rate_admit(buckets, wants, limit, self.replica, REPLICA_TTL)

        answer = await self._guarded.call("rate_admit", shared, None)
        if answer is None:
            self._enter_local()
            answer = await self._local.rate_admit(
                [self._share(b) for b in buckets], wants, limit, self.replica, REPLICA_TTL
            )
        else:
            self._leave_local()
            self.replicas = max(1, answer.replicas)
        if any(by >= 0 for by in answer.refused_by.values()):
            self._rate_refused_at = self._clock()
        for refused, by in answer.refused_by.items():
            if by >= 0:
                self.throttled(candidates[refused][1].name, buckets[by].reason, 1)
        return list(answer.admitted)

    def recheck_after(self, timeout: float) -> float:
        """How long a lease that found nothing waits before it looks again: soon when a rate
        held jobs back a moment ago (on this replica), else `timeout` (or a wake-up)."""
        if self._clock() - self._rate_refused_at < 2 * RATE_RECHECK:
            return min(timeout, RATE_RECHECK)
        return timeout

    def tenant_cap(self, tenant: str) -> int:
        return self._tenant_caps.get(tenant, 0)

    def order(self, queues: Sequence[QueueConfig]) -> list[QueueConfig]:
        by_flow = {(q.tenant, q.name): q for q in queues}
        return [by_flow[f] for f in self._fair.order(list(by_flow))]

    def started(
        self, queues: Sequence[QueueConfig], counts: Mapping[Flow, int], empty: Set[Flow]
    ) -> None:
        weights = self._fair.weights([((q.tenant, q.name), q.weight) for q in queues])
        self._fair.charge(weights, counts, empty)

    def _share(self, bucket: RateBucket) -> RateBucket:
        n = self.replicas
        return RateBucket(
            bucket.key, bucket.rate / n, max(1, math.ceil(bucket.burst / n)), bucket.reason
        )

    def _enter_local(self) -> None:
        if not self.local:
            self.local = True
            self._metrics.rate_limit_local.set(1)
            log.warning(
                "rate limits decided by local buckets until coordination answers: this "
                "replica takes 1/%d of each rate (replicas last counted)",
                self.replicas,
            )

    def _leave_local(self) -> None:
        if self.local:
            self.local = False
            self._metrics.rate_limit_local.set(0)
            log.warning("rate limits shared across replicas again")

    def throttled(self, queue: str, reason: str, count: int) -> None:
        self._metrics.lease_throttled.labels(queue, reason).inc(count)

    def running(self, queue: str, count: int) -> None:
        self._metrics.cap_slots_in_use.labels(queue).set(count)
