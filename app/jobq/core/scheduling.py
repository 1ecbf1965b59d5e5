"""Which queue a worker's free slots are filled from first."""

from __future__ import annotations

from collections.abc import Sequence
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
