"""Shared test helpers. Each suite's own conftest adds its fixtures."""

from __future__ import annotations

import datetime as dt

import pytest

from jobq.core.clock import FixedClock

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)
