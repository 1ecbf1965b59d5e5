"""The SDK logs each distinct submit warning once a minute, and hands every reply's back."""

from __future__ import annotations

import logging

import pytest

from jobq.client._warnings import WarningLog

UNSERVED = "no live worker serves task 'ecko' on queue 'default': the job waits until one does"
OTHER = "no live worker serves task 'echo' on queue 'emails': the job waits until one does"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "jobq.client"]


def test_a_thousand_submits_to_an_unserved_queue_log_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    warn = WarningLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger="jobq.client"):
        replies = []
        for _ in range(1000):
            replies.append(warn([UNSERVED]))
            clock.now += 0.01  # ten seconds in all
    assert _lines(caplog) == [f"jobq: {UNSERVED}"]
    # Each submit still carries its warning, for code that reads Submitted.warnings.
    assert all(reply == (UNSERVED,) for reply in replies)


def test_a_distinct_warning_is_logged_at_once_and_a_repeat_after_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    warn = WarningLog(clock=clock)
    with caplog.at_level(logging.WARNING, logger="jobq.client"):
        warn([UNSERVED])
        clock.now = 1.0
        warn([UNSERVED, OTHER])  # the new one is logged, the repeat is not
        clock.now = 59.9
        warn([UNSERVED])  # still within the minute
        clock.now = 60.0
        warn([UNSERVED])  # a minute on: the user hears it is still so
        assert warn([]) == ()
    assert _lines(caplog) == [f"jobq: {UNSERVED}", f"jobq: {OTHER}", f"jobq: {UNSERVED}"]


def test_each_client_logs_for_itself(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    with caplog.at_level(logging.WARNING, logger="jobq.client"):
        WarningLog(clock=clock)([UNSERVED])
        WarningLog(clock=clock)([UNSERVED])
    assert len(_lines(caplog)) == 2
