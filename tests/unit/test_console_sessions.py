"""The console's sessions are signed cookies: any replica with the secret reads them, no other
does, a changed byte is refused, and an idle one expires."""

from __future__ import annotations

import datetime as dt

from jobq.server.console.web import ANONYMOUS_IDLE, SESSION_IDLE, Sessions

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
SECRET = "s" * 32
MINUTE = dt.timedelta(minutes=1)


def test_a_session_signed_by_one_replica_is_read_by_another_with_the_secret() -> None:
    cookie = Sessions(SECRET).dump(Sessions.new(key_id="0000000000000005"), T0)
    session = Sessions(SECRET).load(cookie, T0 + MINUTE)
    assert session is not None and session.key_id == "0000000000000005" and session.logged_in
    assert "jq_" not in cookie  # it names the key, never its secret
    assert Sessions("t" * 32).load(cookie, T0) is None  # another secret: not ours
    tampered = cookie[:5] + ("x" if cookie[5] != "x" else "y") + cookie[6:]  # in the payload
    assert Sessions(SECRET).load(tampered, T0) is None


def test_idle_sessions_expire_anonymous_ones_sooner() -> None:
    sessions = Sessions(SECRET)
    user = sessions.dump(sessions.new(token="a.jwt.token"), T0)
    anonymous = sessions.dump(sessions.new(), T0)
    later = T0 + ANONYMOUS_IDLE + MINUTE
    assert sessions.load(anonymous, later) is None
    kept = sessions.load(user, later)
    assert kept is not None and kept.token == "a.jwt.token"
    assert sessions.load(user, T0 + SESSION_IDLE + MINUTE) is None
