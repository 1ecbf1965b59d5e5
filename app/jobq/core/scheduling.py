"""Which queue a worker's free slots are filled from first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import TypeVar

from jobq.core.retry import Random

T = TypeVar("T")


def weighted_order(items: Sequence[tuple[T, int]], rng: Random) -> list[T]:
    """A random order in which an item of weight w comes first w/Σw of the time.

    Weighted sampling without replacement (Efraimidis-Spirakis): each item draws
    u^(1/w) and the largest keys lead. Over many lease calls every queue's share of
    first picks matches its weight, and no queue with weight ≥ 1 starves.
    """
    keyed = [(rng.random() ** (1.0 / weight), index) for index, (_, weight) in enumerate(items)]
    keyed.sort(reverse=True)
    return [items[index][0] for _, index in keyed]


Flow = tuple[str, str]  # (tenant, queue)


class FairShare:
    """Deterministic weighted fair order across (tenant, queue) flows, kept between leases.

    Stride scheduling: each flow has a pass that grows by 1/weight for every job it starts;
    the lowest pass is served first. A flow's weight is its tenant's weight times its
    queue's share of that tenant's weights among the queues asked for, so a tenant's share
    does not grow with how many queues it has, and a tenant with a huge backlog gets its
    weight's share and no more. A flow that had nothing to start is raised to the least
    pass of those that did: idle time banks no credit to spend in a burst later.
    """

    def __init__(self, tenant_weights: Mapping[str, int] | None = None) -> None:
        self._tenant_weights = dict(tenant_weights or {})
        self._pass: dict[Flow, float] = {}

    def tenant_weight(self, tenant: str) -> int:
        return self._tenant_weights.get(tenant, 1)

    def weights(self, flows: Sequence[tuple[Flow, int]]) -> dict[Flow, float]:
        per_tenant: dict[str, int] = {}
        for (tenant, _), weight in flows:
            per_tenant[tenant] = per_tenant.get(tenant, 0) + weight
        return {
            flow: self.tenant_weight(flow[0]) * weight / per_tenant[flow[0]]
            for flow, weight in flows
        }

    def order(self, flows: Sequence[Flow]) -> list[Flow]:
        floor = min((self._pass[f] for f in flows if f in self._pass), default=0.0)
        for flow in flows:
            self._pass.setdefault(flow, floor)
        return sorted(flows, key=lambda f: (self._pass[f], f))

    def charge(
        self, weights: Mapping[Flow, float], started: Mapping[Flow, int], empty: Set[Flow]
    ) -> None:
        """`started`: jobs each flow started; `empty`: flows asked that had none to start
        (not those the lease never reached because it was full)."""
        for flow, count in started.items():
            if count:
                self._pass[flow] = self._pass.get(flow, 0.0) + count / weights[flow]
        busy = [self._pass[f] for f, n in started.items() if n]
        if busy:
            least = min(busy)
            for flow in empty:
                self._pass[flow] = max(self._pass.get(flow, least), least)
