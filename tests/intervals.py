"""Recorded runs as (start, finish) intervals: how many were open at once."""

from __future__ import annotations


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (a finish before a start when
    they touch: one run ending as the next begins is not an overlap)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals])
    open_now = peak = 0
    for _, step in edges:
        open_now += step
        peak = max(peak, open_now)
    return peak
