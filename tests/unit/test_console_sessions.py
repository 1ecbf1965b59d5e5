"""The console's sessions: anonymous visits cost bounded memory and never log a user out."""

from __future__ import annotations

import datetime as dt

from jobq.server.console.web import ANONYMOUS_IDLE, SESSION_IDLE, Sessions

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_a_flood_of_anonymous_visits_is_bounded_and_keeps_logged_in_users() -> None:
    sessions = Sessions(anonymous_max=100)
    user, _ = sessions.new("jq_key", T0)
    for _ in range(5_000):
        sessions.new(None, T0)
    assert len(sessions) == 101
    session = sessions.get(user, T0)
    assert session is not None and session.credential == "jq_key"


def test_the_newest_anonymous_sessions_survive_the_bound() -> None:
    sessions = Sessions(anonymous_max=2)
    first, _ = sessions.new(None, T0)
    second, _ = sessions.new(None, T0)
    sessions.get(first, T0)  # used again: now the newest
    sessions.new(None, T0)
    assert sessions.get(first, T0) is not None
    assert sessions.get(second, T0) is None


def test_anonymous_sessions_expire_sooner_than_logged_in_ones() -> None:
    sessions = Sessions()
    anonymous, _ = sessions.new(None, T0)
    user, _ = sessions.new("jq_key", T0)
    later = T0 + ANONYMOUS_IDLE + dt.timedelta(seconds=1)
    assert sessions.get(anonymous, later) is None
    assert sessions.get(user, later) is not None
    assert sessions.get(user, later + SESSION_IDLE) is not None  # idle, not age, counts
    assert sessions.get(user, later + 2 * SESSION_IDLE + dt.timedelta(seconds=2)) is None


def test_a_dropped_session_is_gone() -> None:
    sessions = Sessions()
    user, _ = sessions.new("jq_key", T0)
    sessions.drop(user)
    assert sessions.get(user, T0) is None
    assert sessions.get(None, T0) is None
