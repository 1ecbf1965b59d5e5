"""Small server-rendered SVG charts: bars per time bucket, no script, no inline style."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from jobq.core.model import Job

BUCKETS = 12  # five minutes each: the last hour
WIDTH, HEIGHT = 240, 48


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    peak: str
    width: int = WIDTH
    height: int = HEIGHT


def _bars(values: Sequence[float], labels: Sequence[str]) -> list[Bar]:
    top = max(values, default=0) or 1
    step = WIDTH / len(values)
    bars = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = (HEIGHT - 2) * value / top
        bars.append(Bar(index * step + 1, HEIGHT - h, step - 2, h, label))
    return bars


def last_hour(finished: Sequence[Job], now: dt.datetime) -> tuple[Chart, Chart]:
    """Throughput (jobs finished per 5 minutes) and mean run latency per 5 minutes, from a
    bounded sample of the newest finished jobs (never a count over the whole table)."""
    start = now - dt.timedelta(hours=1)
    counts = [0] * BUCKETS
    seconds = [0.0] * BUCKETS
    for job in finished:
        if job.finished_at is None or job.finished_at < start:
            continue
        index = min(BUCKETS - 1, int((job.finished_at - start) / dt.timedelta(minutes=5)))
        counts[index] += 1
        if job.started_at is not None:
            seconds[index] += (job.finished_at - job.started_at).total_seconds()
    latency = [s / c if c else 0.0 for s, c in zip(seconds, counts, strict=True)]
    minutes = [f"-{60 - 5 * i}m" for i in range(BUCKETS)]
    throughput = Chart(
        "finished / 5 min",
        _bars(counts, [f"{m}: {c}" for m, c in zip(minutes, counts, strict=True)]),
        str(max(counts)),
    )
    run_time = Chart(
        "mean run time",
        _bars(latency, [f"{m}: {v:.2f}s" for m, v in zip(minutes, latency, strict=True)]),
        f"{max(latency):.2f}s",
    )
    return throughput, run_time
