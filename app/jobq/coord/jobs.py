"""A job as the status cache holds it: JSON, every field of jobq.core.model.Job."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from jobq.core.model import Job
from jobq.core.states import JobState

__all__ = ["decode_job", "encode_job"]

_TIMES = frozenset(
    {"run_at", "created_at", "updated_at", "expires_at", "lease_expires_at", "started_at",
     "finished_at"}
)  # fmt: skip
_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))


def encode_job(job: Job) -> bytes:
    data: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(job, name)
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif isinstance(value, dt.timedelta):
            value = value.total_seconds()
        data[name] = value
    return json.dumps(data, separators=(",", ":")).encode()


def decode_job(raw: bytes) -> Job | None:
    """None for anything that is not a whole job of this version (then the database is read)."""
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or set(data) != _FIELDS:
            return None
        for name in _TIMES:
            if data[name] is not None:
                data[name] = dt.datetime.fromisoformat(data[name])
        if data["timeout"] is not None:
            data["timeout"] = dt.timedelta(seconds=data["timeout"])
        data["state"] = JobState(data["state"])
        return Job(**data)
    except (ValueError, TypeError, KeyError):
        return None
