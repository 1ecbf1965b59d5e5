"""Human durations ("30s", "10m", "1h30m", "250ms") to timedelta and back."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int | dt.timedelta) -> dt.timedelta:
    """Parse "1h30m", "45s", "250ms" or a number of seconds. Raises ValueError."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration {value!r}")
        return dt.timedelta(seconds=value)
    text = value.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return parse_duration(seconds)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 10m, 1h30m, 250ms)")
    return dt.timedelta(seconds=total)


def format_duration(delta: dt.timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{int(count)}{unit}")
    if seconds or not parts:
        parts.append(f"{seconds:g}s")
    return "".join(parts)
