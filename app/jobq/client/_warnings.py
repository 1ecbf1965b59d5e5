"""The server's warnings on submits, logged once per distinct sentence per interval.

A submit to a queue whose worker is not up yet carries "no live worker serves task ..." in its
reply. Logged on every submit, a loop of ten thousand submits writes ten thousand identical
lines and buries everything else; each reply still carries its warnings (Submitted.warnings)
for code that wants them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("jobq.client")

# How long a warning already logged by this client stays quiet.
REPEAT_AFTER = 60.0  # seconds

# Distinct warnings remembered at most: a server naming a new task in each warning cannot grow
# the client without bound; past this, the oldest is forgotten (and may be logged again).
REMEMBERED = 1000


class WarningLog:
    """Logs each distinct warning at most once per `repeat_after` seconds."""

    def __init__(
        self,
        repeat_after: float = REPEAT_AFTER,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self._repeat_after = repeat_after
        self._clock = clock
        self._log = logger
        self._logged: dict[str, float] = {}  # warning -> when last logged, oldest first

    def __call__(self, warnings: Sequence[str]) -> tuple[str, ...]:
        """Log those of `warnings` not logged within the interval; all of them, returned."""
        if warnings:
            now = self._clock()
            for warning in warnings:
                last = self._logged.get(warning)
                if last is not None and now - last < self._repeat_after:
                    continue
                self._logged.pop(warning, None)  # re-inserted last: the dict stays by age
                self._logged[warning] = now
                if len(self._logged) > REMEMBERED:
                    del self._logged[next(iter(self._logged))]
                self._log.warning("jobq: %s", warning)
        return tuple(warnings)
