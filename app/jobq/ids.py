"""Identifiers: UUIDv7, so ids sort by creation time and index well."""

from __future__ import annotations

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())
