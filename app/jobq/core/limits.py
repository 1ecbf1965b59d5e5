"""Lease-time limits as plain data: which leasable jobs a lease may start (ADR 0017).

A lease first picks candidates (queued rows it has locked), then drops those over a
concurrency cap (counted by the database in the same transaction, so exact), then asks the
rate limiter which of the rest may start now, and claims only those. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence, Set
from typing import Protocol

from jobq.core.model import QueueConfig

__all__ = [
    "THROTTLE_REASONS",
    "Candidate",
    "LeaseLimits",
    "RateBucket",
    "rate_buckets",
    "within_caps",
]

# Why a leasable job was not started by a lease: the label of jq_lease_throttled_total.
THROTTLE_REASONS = ("tenant_cap", "queue_cap", "key_cap", "rate", "key_rate")


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A queued job a lease has locked and may start."""

    job_id: str
    tenant: str
    queue: str
    rate_key: str | None = None
    concurrency_key: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RateBucket:
    """One GCRA bucket: `key` names it across replicas; `reason` is what a refusal counts as."""

    key: str
    rate: float
    burst: int
    reason: str


def rate_buckets(candidate: Candidate, queue: QueueConfig) -> list[RateBucket]:
    """The buckets a candidate draws from: its queue's rate and its key's, where set.

    Keys are scoped by tenant and queue: two tenants' "emails" never share a rate, and a
    rate_key means one thing within one queue's setting."""
    scope = f"{queue.tenant}/{queue.name}"
    out = []
    if queue.rate_limit:
        out.append(RateBucket(f"q:{scope}", queue.rate_limit, max(queue.rate_burst, 1), "rate"))
    if queue.key_rate_limit and candidate.rate_key:
        out.append(
            RateBucket(
                f"k:{scope}:{candidate.rate_key}",
                queue.key_rate_limit,
                max(queue.key_rate_burst, 1),
                "key_rate",
            )
        )
    return out


def within_caps(
    candidates: Sequence[Candidate],
    queue: QueueConfig,
    running: Mapping[str | None, int],
) -> tuple[list[Candidate], dict[str, int]]:
    """The candidates (in order) that fit the queue's caps, given the jobs running now by
    concurrency key (None: jobs with no key), and how many were dropped for which cap."""
    total = sum(running.values())
    by_key = {k: n for k, n in running.items() if k is not None}
    kept: list[Candidate] = []
    dropped = {"queue_cap": 0, "key_cap": 0}
    for candidate in candidates:
        if queue.concurrency_limit and total >= queue.concurrency_limit:
            dropped["queue_cap"] += 1
            continue
        key = candidate.concurrency_key
        if queue.key_concurrency_limit and key is not None:
            if by_key.get(key, 0) >= queue.key_concurrency_limit:
                dropped["key_cap"] += 1
                continue
            by_key[key] = by_key.get(key, 0) + 1
        total += 1
        kept.append(candidate)
    return kept, {k: n for k, n in dropped.items() if n}


class LeaseLimits(Protocol):
    """What a lease asks of the server's dispatcher (jobq.server.dispatch)."""

    async def admit(
        self, candidates: Sequence[tuple[Candidate, QueueConfig]], limit: int
    ) -> list[int]:
        """Indexes (ascending) of the candidates that may start now, at most `limit`, with
        their rates charged; the others are counted as throttled."""
        ...

    def throttled(self, queue: str, reason: str, count: int) -> None:
        """`count` leasable jobs of `queue` were not started for `reason`."""
        ...

    def tenant_cap(self, tenant: str) -> int:
        """Running jobs the tenant may have across all its queues (0: no cap)."""
        ...

    def order(self, queues: Sequence[QueueConfig]) -> list[QueueConfig]:
        """The open queues in the order this lease fills from (fair dispatch)."""
        ...

    def started(
        self, queues: Sequence[QueueConfig], counts: Mapping[tuple[str, str], int],
        empty: Set[tuple[str, str]],
    ) -> None:  # fmt: skip
        """What the lease started per (tenant, queue), and which queues it asked that had
        nothing to start."""
        ...

    def running(self, queue: str, count: int) -> None:
        """A capped queue's running jobs (its cap slots in use) as a lease just left them."""
        ...
