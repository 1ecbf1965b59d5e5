"""Identifiers: UUIDv7, so ids sort by creation time and index well.

uuid-utils draws them in native code, monotonic within the process: an id drawn later
sorts after every id drawn before it, even within one millisecond (workflows rely on it:
parents are drawn first, so id order puts them first).
"""

from __future__ import annotations

import uuid_utils


def new_id() -> str:
    return str(uuid_utils.uuid7())
