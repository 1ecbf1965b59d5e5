"""The correlation id of the request being served, carried through logs and job events."""

from __future__ import annotations

import contextvars

from jobq.ids import new_id

CORRELATION_HEADER = "x-correlation-id"

correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")


def current_or_new() -> str:
    return correlation_id.get() or new_id()
