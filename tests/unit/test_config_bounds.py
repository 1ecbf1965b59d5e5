"""Settings that size requests: validated at start, naming the variable."""

from __future__ import annotations

import datetime as dt

import pytest

from jobq.config import ConfigError, ServerSettings, load

CASES = [
    ({"max_json_depth": 0}, "JQ_MAX_JSON_DEPTH"),
    ({"max_json_depth": 501}, "JQ_MAX_JSON_DEPTH"),
    ({"max_error_bytes": 10}, "JQ_MAX_ERROR_BYTES"),
    ({"max_receive_bytes": 1000}, "JQ_MAX_RECEIVE_BYTES"),
    ({"default_lease_timeout": dt.timedelta(days=2)}, "JQ_DEFAULT_LEASE_TIMEOUT"),
    ({"default_retention": dt.timedelta(days=100_000)}, "JQ_DEFAULT_RETENTION"),
]


@pytest.mark.parametrize(("overrides", "variable"), CASES)
def test_bad_request_size_settings_name_the_variable(overrides, variable) -> None:
    with pytest.raises(ConfigError, match=variable):
        load(ServerSettings, **overrides)


RECEIVE = [
    # max_payload_bytes, max_batch, max_error_bytes, max_receive_bytes, limit
    (1 << 20, 1000, 16384, 0, 64 << 20),  # the cap
    (1000, 10, 16384, 0, 10 * (16384 + 32768)),  # a full batch of error texts
    (100_000, 1, 16384, 0, 100_000 + (64 << 10)),  # never less than one payload's request
    (1000, 10, 16384, 5 << 20, 5 << 20),  # explicit
]


@pytest.mark.parametrize(("payload", "batch", "error", "explicit", "limit"), RECEIVE)
def test_the_receive_limit_follows_batch_and_payload(payload, batch, error, explicit, limit):
    settings = ServerSettings(
        max_payload_bytes=payload,
        max_batch=batch,
        max_error_bytes=error,
        max_receive_bytes=explicit,
    )
    assert settings.receive_limit() == limit
