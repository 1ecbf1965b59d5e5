"""What the server calls: a coordinator with timing, and a fallback answer when it is down.

Redis down (or failing over) must never fail a request: each call that cannot be answered
returns the caller's fallback (None: "not known, ask the database"), counts in
jq_redis_errors_total, and the first failure logs one line and sets jq_redis_fallback to 1
until a call succeeds again. While down, calls are skipped for `retry_every` seconds at a
time, so a request does not pay a connect timeout per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from jobq.coord.base import Coordinator, CoordUnavailable
from jobq.observability.metrics import ServerMetrics

__all__ = ["GuardedCoordinator"]

log = logging.getLogger("jobq.coord")

T = TypeVar("T")


class GuardedCoordinator:
    def __init__(
        self,
        coordinator: Coordinator,
        metrics: ServerMetrics,
        *,
        shared: bool,
        retry_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`shared`: the backend is Redis, seen by every replica (timed as such); False
        for the in-process adapter."""
        self.backend = coordinator
        self.shared = shared
        self._metrics = metrics
        self._retry_every = retry_every
        self._clock = clock
        self._down_since: float | None = None
        self._next_try = 0.0
        self._subscription_down = False
        metrics.redis_fallback.set(0)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    async def call(self, operation: str, work: Callable[[], Awaitable[T]], fallback: T) -> T:
        now = self._clock()
        if self._down_since is not None and now < self._next_try:
            self._metrics.redis_errors.labels(operation).inc()
            return fallback
        started = time.perf_counter()
        try:
            result = await work()
        except CoordUnavailable as exc:
            self._failed(operation, exc)
            return fallback
        finally:
            if self.shared:
                self._metrics.redis_duration.labels(operation).observe(
                    time.perf_counter() - started
                )
        self.recovered()
        return result

    def _failed(self, operation: str, exc: CoordUnavailable) -> None:
        self._metrics.redis_errors.labels(operation).inc()
        self._next_try = self._clock() + self._retry_every
        if self._down_since is None:
            self._down_since = self._clock()
            self._metrics.redis_fallback.set(1)
            log.warning(
                "coordination unavailable, serving without it (cache bypassed, presence "
                "from the database) until it answers: %s",
                exc,
            )

    def subscription_lost(self, exc: CoordUnavailable) -> None:
        """The pub/sub subscription failed: counted, and logged once until it is back. It
        does not pause other calls: they find the way to a failed-over master themselves."""
        self._metrics.redis_errors.labels("subscribe").inc()
        if not self._subscription_down:
            self._subscription_down = True
            log.warning("job change subscription lost, resubscribing: %s", exc)

    def subscribed(self) -> None:
        if self._subscription_down:
            self._subscription_down = False
            log.warning("job change subscription restored")

    def recovered(self) -> None:
        if self._down_since is not None:
            log.warning("coordination answers again after %.1f s", self._clock() - self._down_since)
            self._down_since = None
            self._metrics.redis_fallback.set(0)
