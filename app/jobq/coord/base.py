"""The coordination port: what server replicas share beyond the database, fast and lossy.

Everything here is advisory or self-healing. A rate-limit answer, a slot, a presence key
or a cached job can be lost with the backend (Redis restarted, a failover dropped the last
writes) and the system stays correct: the database decides which attempt may finish
(ADR 0002, ADR 0015). So every operation either expires by itself (slots, presence,
cache entries) or is safe to repeat.

Errors: an adapter raises `CoordUnavailable` (from the driver's error) when its backend
cannot answer; callers in the server go through `jobq.coord.guard.GuardedCoordinator`,
which turns that into the fallback answer, a metric and one log line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from jobq.core.errors import JobqError
from jobq.core.limits import RateBucket

__all__ = [
    "CACHE_VERSION_TTL",
    "CHANNEL_JOBS",
    "CacheEntry",
    "CoordUnavailable",
    "Coordinator",
    "RateAdmission",
    "RateDecision",
    "SlotGrant",
]

# The pub/sub channel every replica listens on for job ids whose cached status changed.
CHANNEL_JOBS = "jq:jobs-changed"


class CoordUnavailable(JobqError):
    """The coordination backend did not answer (down, failing over, refused our login)."""


# How long a key's version outlives its last change or fill. Versions are unique tokens, so
# one that expired fails the puts of readers holding it (never lets a stale one in): this
# bounds a load's time to fill the cache, not correctness.
CACHE_VERSION_TTL = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class CacheEntry:
    value: bytes | None
    version: str


@dataclasses.dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer for a whole batch: start `granted` of the `asked` now; when none could,
    the next one is allowed in `retry_after` seconds."""

    asked: int
    granted: int
    retry_after: float


@dataclasses.dataclass(frozen=True, slots=True)
class RateAdmission:
    """A lease batch's answer: the candidates admitted (indexes, ascending); for each one
    refused, the index of the bucket that refused it (-1: the batch was full); and how many
    replicas asked within the last `replica_ttl` (this one included)."""

    admitted: tuple[int, ...]
    refused_by: dict[int, int]
    replicas: int


@dataclasses.dataclass(frozen=True, slots=True)
class SlotGrant:
    """The holders (lease ids, e.g. "job:attempt") that got a slot, and the slots in use
    after the call (expired ones reclaimed first)."""

    granted: tuple[str, ...]
    in_use: int


JobsChanged = Callable[[list[str]], Awaitable[None] | None]


class Coordinator(Protocol):
    """One protocol, three adapters: in-process, Redis standalone, Redis cluster.

    Keys are the caller's names ("queue:t/emails", "key:t/customer-42"); the adapter maps
    each to its backend's keys and keeps what one call touches in one hash slot.
    Times are seconds; the adapter's own clock (Redis: the server's TIME) measures them,
    so replicas with skewed clocks share one view.
    """

    async def rate_acquire(self, key: str, rate: float, burst: int, n: int) -> RateDecision:
        """GCRA: may `n` jobs start now under `rate` per second with `burst`? How many?
        Grants as many as fit (0..n) and charges only those, in one atomic step."""
        ...

    async def rate_admit(
        self,
        buckets: Sequence[RateBucket],
        wants: Sequence[Sequence[int]],
        limit: int,
        replica: str,
        replica_ttl: float,
    ) -> RateAdmission:
        """A whole lease batch in one atomic step: candidate i (in order) draws one from
        each bucket `wants[i]` names and is admitted only if every one has room (GCRA, as
        `rate_acquire`), until `limit` are admitted; only admitted ones are charged. Also
        marks `replica` as leasing for `replica_ttl` seconds, and counts those that are."""
        ...

    async def slots_acquire(
        self, key: str, limit: int, holders: Sequence[str], ttl: float
    ) -> SlotGrant:
        """Give each holder a slot that expires in `ttl` seconds, while fewer than `limit`
        are held (0: no limit, a counter). Expired slots are reclaimed in the same step,
        so a holder that died frees its slot at its expiry. A holder already holding a
        slot keeps it and has its expiry renewed."""
        ...

    async def slots_renew(self, key: str, holders: Sequence[str], ttl: float) -> int:
        """Push the expiry of slots still held to `ttl` from now; returns how many were."""
        ...

    async def slots_release(self, key: str, holders: Sequence[str]) -> int:
        """Free the holders' slots; returns how many were held."""
        ...

    async def slots_in_use(self, key: str) -> int:
        """Slots held and not expired."""
        ...

    async def presence_mark(self, worker_id: str, ttl: float) -> None:
        """The worker is alive for `ttl` more seconds."""
        ...

    async def presence_clear(self, worker_id: str) -> None: ...

    async def presence_live(self) -> set[str]:
        """Ids of workers whose presence has not expired."""
        ...

    async def cache_get(self, key: str) -> CacheEntry:
        """The cached value (None on a miss) and the key's version now, for cache_put."""
        ...

    async def cache_put(self, key: str, value: bytes, ttl: float, version: str) -> None:
        """Store for `ttl` seconds unless `key` was invalidated since the cache_get that
        returned `version`: a reader that read the store before a change must not put its
        stale copy back after the invalidation, and the first reader after it may."""
        ...

    async def cache_invalidate(self, keys: Sequence[str]) -> None:
        """Drop the keys' values and give each a new version."""
        ...

    async def publish_jobs_changed(self, job_ids: Sequence[str]) -> None:
        """Tell every replica's subscriber (including this one's) these jobs changed."""
        ...

    async def subscribe_jobs_changed(self, on_change: JobsChanged) -> None:
        """Call `on_change` with each published batch until cancelled; raises
        CoordUnavailable when the subscription is lost (the caller resubscribes)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
