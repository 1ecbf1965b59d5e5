"""JQ_DATABASE_APP_USER / JQ_DATABASE_APP_PASSWORD (ADR 0019): one without the other would
let `jq-server migrate` set up a login nobody can use, so start-up refuses it."""

from __future__ import annotations

import pytest

from jobq.config import ConfigError, ServerSettings, load


@pytest.mark.parametrize(
    "given",
    [{"database_app_user": "jobq_app"}, {"database_app_password": "secret"}],
)
def test_the_app_login_needs_both_user_and_password(given: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="JQ_DATABASE_APP_USER and JQ_DATABASE_APP_PASSWORD"):
        load(ServerSettings, **given)


def test_both_together_are_accepted() -> None:
    settings = load(ServerSettings, database_app_user="jobq_app", database_app_password="s")
    assert settings.database_app_user == "jobq_app"
