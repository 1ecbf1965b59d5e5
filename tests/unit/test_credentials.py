"""Database credentials: caching, shared refreshes, secret parsing, auth-failure detection.

The Secrets Manager client here is a stand-in; tests/integration/test_credentials_moto.py
runs the same class against boto3 and moto.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from jobq.core.errors import StoreUnavailable
from jobq.store.postgres.credentials import (
    SecretsManagerCredentials,
    StaticCredentials,
    build_credentials,
    is_auth_failure,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jobq/db-AbCdEf"
PASSWORD = "s3cr3t-Pa55"


def rds_secret(password: str | None = PASSWORD, **overrides: Any) -> str:
    secret: dict[str, Any] = {
        "engine": "postgres",
        "username": "jobq",
        "password": password,
        "host": "db.example.internal",
        "port": 5432,
        "dbname": "jobq",
        "dbInstanceIdentifier": "jobq-db",
    }
    secret.update(overrides)
    return json.dumps({k: v for k, v in secret.items() if v is not None})


class FakeSecretsManager:
    """Answers GetSecretValue with whatever `secret_string` holds now; counts calls."""

    def __init__(self, secret_string: str | None) -> None:
        self.secret_string = secret_string
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:
        self.calls += 1
        self.release.wait(timeout=5)
        response: dict[str, Any] = {"ARN": SecretId, "Name": "jobq/db"}
        if self.secret_string is not None:
            response["SecretString"] = self.secret_string
        else:
            response["SecretBinary"] = b"\x00\x01"
        return response


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(
    client: FakeSecretsManager, clock: Ticker | None = None, ttl: float = 300.0
) -> SecretsManagerCredentials:
    return SecretsManagerCredentials(
        ARN, client_factory=lambda: client, cache_ttl=ttl, clock=clock or Ticker()
    )


async def test_static_credentials_add_nothing_to_the_url() -> None:
    creds = StaticCredentials()
    assert await creds.connection_kwargs() == {}
    assert await creds.refresh() == {}


async def test_without_a_secret_arn_the_url_carries_the_login() -> None:
    assert isinstance(build_credentials(None, "eu-west-1"), StaticCredentials)
    assert isinstance(build_credentials("", None), StaticCredentials)


def test_a_secret_arn_selects_secrets_manager() -> None:
    assert isinstance(build_credentials(ARN, "eu-west-1"), SecretsManagerCredentials)


async def test_the_aws_client_is_made_on_first_read_and_then_reused() -> None:
    # Building the client loads service models from disk: not at start-up, and not per read.
    client = FakeSecretsManager(rds_secret())
    made = 0

    def factory() -> FakeSecretsManager:
        nonlocal made
        made += 1
        return client

    creds = SecretsManagerCredentials(ARN, client_factory=factory)
    assert made == 0
    await creds.connection_kwargs()
    await creds.refresh()
    assert (made, client.calls) == (1, 2)


async def test_an_rds_secret_becomes_psycopg_connect_keywords() -> None:
    creds = credentials(FakeSecretsManager(rds_secret()))
    assert await creds.connection_kwargs() == {
        "user": "jobq",
        "password": PASSWORD,
        "host": "db.example.internal",
        "port": "5432",
        "dbname": "jobq",
    }


async def test_a_port_written_as_a_string_is_accepted() -> None:
    creds = credentials(FakeSecretsManager(rds_secret(port="6432")))
    assert (await creds.connection_kwargs())["port"] == "6432"


async def test_a_secret_with_only_a_login_leaves_host_and_database_to_the_url() -> None:
    # RDS-managed master secrets (ManageMasterUserPassword) hold only these two keys.
    secret = json.dumps({"username": "postgres", "password": PASSWORD})
    creds = credentials(FakeSecretsManager(secret))
    assert await creds.connection_kwargs() == {"user": "postgres", "password": PASSWORD}


async def test_within_the_ttl_the_secret_is_read_once() -> None:
    client, clock = FakeSecretsManager(rds_secret()), Ticker()
    creds = credentials(client, clock, ttl=300)
    await creds.connection_kwargs()
    clock.now += 299
    await creds.connection_kwargs()
    assert client.calls == 1


async def test_after_the_ttl_the_secret_is_read_again() -> None:
    client, clock = FakeSecretsManager(rds_secret("old")), Ticker()
    creds = credentials(client, clock, ttl=300)
    assert (await creds.connection_kwargs())["password"] == "old"
    client.secret_string = rds_secret("new")
    clock.now += 300
    assert (await creds.connection_kwargs())["password"] == "new"
    assert client.calls == 2


async def test_refresh_reads_again_within_the_ttl_and_later_calls_see_its_result() -> None:
    client = FakeSecretsManager(rds_secret("old"))
    creds = credentials(client)
    await creds.connection_kwargs()
    client.secret_string = rds_secret("new")
    assert (await creds.connection_kwargs())["password"] == "old"
    assert (await creds.refresh())["password"] == "new"
    assert (await creds.connection_kwargs())["password"] == "new"
    assert client.calls == 2


async def test_callers_cannot_change_the_cached_login() -> None:
    creds = credentials(FakeSecretsManager(rds_secret()))
    (await creds.connection_kwargs())["password"] = "tampered"
    assert (await creds.connection_kwargs())["password"] == PASSWORD


async def test_concurrent_refreshes_share_one_read() -> None:
    # Given every pooled connection failing at once after a rotation
    client = FakeSecretsManager(rds_secret())
    creds = credentials(client)
    client.release.clear()
    # When each of them asks for a refresh while the first read is still under way
    waiters = [asyncio.create_task(creds.refresh()) for _ in range(20)]
    waiters += [asyncio.create_task(creds.connection_kwargs()) for _ in range(5)]
    await asyncio.sleep(0.05)
    client.release.set()
    results = await asyncio.gather(*waiters)
    # Then the secret was read once and everyone got the login
    assert client.calls == 1
    assert all(r["password"] == PASSWORD for r in results)


async def test_a_cancelled_waiter_does_not_cancel_the_read_others_share() -> None:
    client = FakeSecretsManager(rds_secret())
    creds = credentials(client)
    client.release.clear()
    first = asyncio.create_task(creds.refresh())
    second = asyncio.create_task(creds.refresh())
    await asyncio.sleep(0.05)
    first.cancel()
    client.release.set()
    assert (await second)["password"] == PASSWORD
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failed_read_is_not_cached() -> None:
    client = FakeSecretsManager("not json")
    creds = credentials(client)
    with pytest.raises(StoreUnavailable):
        await creds.connection_kwargs()
    client.secret_string = rds_secret()
    assert (await creds.connection_kwargs())["password"] == PASSWORD


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        (PASSWORD, "not a JSON object"),
        (json.dumps(PASSWORD), "not a JSON object"),
        (rds_secret(password=None), "password"),
        (rds_secret(password=""), "password"),
        (rds_secret(username=None), "username"),
        (rds_secret(port="fivefourthreetwo"), "port"),
        (None, "SecretString"),
    ],
    ids=[
        "plain-text",
        "json-string",
        "no-password",
        "empty-password",
        "no-username",
        "bad-port",
        "binary",
    ],
)
async def test_an_unusable_secret_is_store_unavailable_naming_the_arn_not_the_password(
    secret_string: str | None, problem: str
) -> None:
    creds = credentials(FakeSecretsManager(secret_string))
    with pytest.raises(StoreUnavailable) as raised:
        await creds.connection_kwargs()
    message = str(raised.value)
    assert ARN in message
    assert problem in message
    assert PASSWORD not in message
    assert raised.value.__cause__ is None


def psycopg_error(name: str, message: str) -> BaseException:
    # psycopg is the PostgreSQL adapter's driver; without it there is nothing to classify.
    psycopg = pytest.importorskip("psycopg")
    cls = psycopg.OperationalError if name == "OperationalError" else getattr(psycopg.errors, name)
    error: BaseException = cls(message)
    return error


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("InvalidPassword", 'password authentication failed for user "jobq"'),
        ("InvalidAuthorizationSpecification", "no pg_hba.conf entry for host"),
        (
            "OperationalError",
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  password authentication failed for user "jobq"',
        ),
    ],
    ids=["28P01", "28000", "message-only"],
)
def test_a_rejected_login_is_an_auth_failure(name: str, message: str) -> None:
    assert is_auth_failure(psycopg_error(name, message))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("OperationalError", "connection failed: Connection refused"),
        ("AdminShutdown", "terminating connection due to administrator command"),
        ("TooManyConnections", "sorry, too many clients already"),
        ("InsufficientPrivilege", "permission denied for table jobs"),
    ],
    ids=["refused", "shutdown", "too-many", "privilege"],
)
def test_other_failures_are_not_auth_failures(name: str, message: str) -> None:
    # A refresh would not help these, and reading the secret for each would only add load.
    assert not is_auth_failure(psycopg_error(name, message))


def test_only_driver_errors_are_auth_failures() -> None:
    assert not is_auth_failure(ValueError("password authentication failed"))


@pytest.mark.parametrize(
    ("url", "login", "expected"),
    [
        ("postgresql://db:5432/jobq", {}, "postgresql+psycopg://db:5432/jobq"),
        (
            "postgresql://old:pw@db:5432/jobq",
            {"user": "jobq", "password": "p@ss/w:rd"},
            "postgresql+psycopg://jobq:p%40ss%2Fw%3Ard@db:5432/jobq",
        ),
        (
            "postgres://db/jobq?sslmode=require",
            {"user": "u", "password": "p", "host": "rds", "port": "6543", "dbname": "prod"},
            "postgresql+psycopg://u:p@rds:6543/prod?sslmode=require",
        ),
    ],
)
def test_migrations_connect_with_the_secret_login(url, login, expected) -> None:
    from jobq.store.postgres import yoyo_url

    assert yoyo_url(url, login) == expected
