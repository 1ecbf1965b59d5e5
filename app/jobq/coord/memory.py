"""The in-process coordinator: the embedded default (one server, SQLite), same contract.

Only one process sees it, which is all a single embedded server needs; pub/sub reaches
this process's own subscribers.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import math
import time
from collections.abc import Callable, Sequence

from jobq.coord.base import (
    CACHE_VERSION_TTL,
    CacheEntry,
    JobsChanged,
    RateAdmission,
    RateDecision,
    SlotGrant,
)
from jobq.core.limits import RateBucket

__all__ = ["MemoryCoordinator"]


class MemoryCoordinator:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._replicas: dict[str, float] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._presence: dict[str, float] = {}
        self._cache: dict[str, tuple[bytes, float]] = {}
        self._versions: dict[str, tuple[str, float]] = {}  # key -> (version, expiry)
        self._tokens = itertools.count(1)
        self._subscribers: list[asyncio.Queue[list[str]]] = []

    async def rate_acquire(self, key: str, rate: float, burst: int, n: int) -> RateDecision:
        now = self._clock()
        granted, tat, retry = gcra(self._tat.get(key, now), now, rate, burst, n)
        self._tat[key] = tat
        return RateDecision(asked=n, granted=granted, retry_after=retry)

    async def rate_admit(
        self,
        buckets: Sequence[RateBucket],
        wants: Sequence[Sequence[int]],
        limit: int,
        replica: str,
        replica_ttl: float,
    ) -> RateAdmission:
        now = self._clock()
        self._replicas[replica] = now + replica_ttl
        for name in [r for r, expiry in self._replicas.items() if expiry <= now]:
            del self._replicas[name]
        tats = [max(self._tat.get(b.key, now), now) for b in buckets]
        admitted: list[int] = []
        refused: dict[int, int] = {}
        for index, drawn in enumerate(wants):
            if len(admitted) >= limit:
                refused[index] = -1
                continue
            full = next(
                (
                    b
                    for b in drawn
                    if not gcra(tats[b], now, buckets[b].rate, buckets[b].burst, 1)[0]
                ),
                None,
            )
            if full is not None:
                refused[index] = full
                continue
            for b in drawn:
                tats[b] += 1.0 / buckets[b].rate
            admitted.append(index)
        for bucket, tat in zip(buckets, tats, strict=True):
            if tat > now:
                self._tat[bucket.key] = tat
        return RateAdmission(tuple(admitted), refused, len(self._replicas))

    def _live(self, key: str) -> dict[str, float]:
        now = self._clock()
        slots = self._slots.setdefault(key, {})
        for holder in [h for h, expiry in slots.items() if expiry <= now]:
            del slots[holder]
        return slots

    async def slots_acquire(
        self, key: str, limit: int, holders: Sequence[str], ttl: float
    ) -> SlotGrant:
        slots = self._live(key)
        expiry = self._clock() + ttl
        granted = []
        for holder in holders:
            if holder in slots or not limit or len(slots) < limit:
                slots[holder] = expiry
                granted.append(holder)
        return SlotGrant(granted=tuple(granted), in_use=len(slots))

    async def slots_renew(self, key: str, holders: Sequence[str], ttl: float) -> int:
        slots = self._live(key)
        expiry = self._clock() + ttl
        held = [h for h in holders if h in slots]
        for holder in held:
            slots[holder] = expiry
        return len(held)

    async def slots_release(self, key: str, holders: Sequence[str]) -> int:
        slots = self._live(key)
        return sum(slots.pop(h, None) is not None for h in set(holders))

    async def slots_in_use(self, key: str) -> int:
        return len(self._live(key))

    async def presence_mark(self, worker_id: str, ttl: float) -> None:
        self._presence[worker_id] = self._clock() + ttl

    async def presence_clear(self, worker_id: str) -> None:
        self._presence.pop(worker_id, None)

    async def presence_live(self) -> set[str]:
        now = self._clock()
        return {w for w, expiry in self._presence.items() if expiry > now}

    async def cache_get(self, key: str) -> CacheEntry:
        now = self._clock()
        version = self._versions.get(key)
        if version is None or version[1] <= now:
            version = (str(next(self._tokens)), now + CACHE_VERSION_TTL)
            self._versions[key] = version
        entry = self._cache.get(key)
        if entry is None or entry[1] <= now:
            return CacheEntry(None, version[0])
        return CacheEntry(entry[0], version[0])

    async def cache_put(self, key: str, value: bytes, ttl: float, version: str) -> None:
        now = self._clock()
        current = self._versions.get(key)
        if current is None or current[1] <= now or current[0] != version:
            return  # invalidated since that read (or its version expired): keep out
        self._versions[key] = (version, max(current[1], now + CACHE_VERSION_TTL))
        self._cache[key] = (value, now + ttl)

    async def cache_invalidate(self, keys: Sequence[str]) -> None:
        expiry = self._clock() + CACHE_VERSION_TTL
        for key in keys:
            self._cache.pop(key, None)
            self._versions[key] = (str(next(self._tokens)), expiry)

    async def publish_jobs_changed(self, job_ids: Sequence[str]) -> None:
        for queue in self._subscribers:
            queue.put_nowait(list(job_ids))

    async def subscribe_jobs_changed(self, on_change: JobsChanged) -> None:
        queue: asyncio.Queue[list[str]] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                outcome = on_change(await queue.get())
                if inspect.isawaitable(outcome):
                    await outcome
        finally:
            self._subscribers.remove(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def gcra(tat: float, now: float, rate: float, burst: int, n: int) -> tuple[int, float, float]:
    """Generic cell rate algorithm over a theoretical arrival time `tat`: (granted, new tat,
    retry_after). The Redis script does the same arithmetic in Lua; this is its reference."""
    interval = 1.0 / rate
    tolerance = interval * max(burst, 1)
    tat = max(tat, now)
    # Jobs that fit: each moves tat on by one interval, and tat may lead now by tolerance.
    # A thousandth of an interval forgiven: float rounding must not refuse a job that fits.
    room = math.floor((now + tolerance - tat) / interval + 1e-3)
    granted = max(0, min(n, room))
    new_tat = tat + granted * interval
    retry = 0.0 if granted else max(0.0, tat + interval - tolerance - now)
    return granted, new_tat, retry
