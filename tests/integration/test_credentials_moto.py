"""Secrets Manager credentials through real boto3 against moto, and a real PostgreSQL login.

No network: moto answers boto3 in-process, and PostgreSQL listens on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from psycopg import sql

from jobq.core.errors import StoreUnavailable
from jobq.store.postgres.credentials import (
    SecretsManagerCredentials,
    build_credentials,
    is_auth_failure,
)

REGION = "eu-west-1"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def secretsmanager() -> Any:
    # Explicit fake keys and region: nothing from the environment or ~/.aws is needed.
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return session.client("secretsmanager")


class CountingClient:
    """Passes GetSecretValue through to a real client, counting the calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0

    def get_secret_value(self, **kwargs: Any) -> Any:
        self.calls += 1
        time.sleep(0.02)  # long enough for concurrent callers to arrive while it is under way
        return self.client.get_secret_value(**kwargs)


def rds_secret(password: str, port: int | str = 5432, host: str = "127.0.0.1") -> str:
    return json.dumps(
        {
            "engine": "postgres",
            "username": "jobq",
            "password": password,
            "host": host,
            "port": port,
            "dbname": "postgres",
        }
    )


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        yield secretsmanager()


def create_secret(aws: Any, secret_string: str, name: str = "jobq/db") -> str:
    arn: str = aws.create_secret(Name=name, SecretString=secret_string)["ARN"]
    return arn


async def test_the_login_is_read_from_the_secret_and_cached(aws: Any) -> None:
    arn = create_secret(aws, rds_secret("first", port="5433"))
    counting = CountingClient(aws)
    creds = SecretsManagerCredentials(arn, client_factory=lambda: counting)
    expected = {
        "user": "jobq",
        "password": "first",
        "host": "127.0.0.1",
        "port": "5433",
        "dbname": "postgres",
    }
    assert await creds.connection_kwargs() == expected
    assert await creds.connection_kwargs() == expected
    assert counting.calls == 1


async def test_after_rotation_refresh_returns_the_new_password(aws: Any) -> None:
    # Given a login read before the secret was rotated
    arn = create_secret(aws, rds_secret("before"))
    creds = SecretsManagerCredentials(arn, client_factory=secretsmanager)
    assert (await creds.connection_kwargs())["password"] == "before"
    # When the rotation writes a new AWSCURRENT version
    aws.put_secret_value(SecretId=arn, SecretString=rds_secret("after"))
    # Then the cache still answers until the database rejects it and refresh() is called
    assert (await creds.connection_kwargs())["password"] == "before"
    assert (await creds.refresh())["password"] == "after"
    assert (await creds.connection_kwargs())["password"] == "after"


async def test_concurrent_refreshes_make_one_aws_call(aws: Any) -> None:
    arn = create_secret(aws, rds_secret("pw"))
    counting = CountingClient(aws)
    creds = SecretsManagerCredentials(arn, client_factory=lambda: counting)
    results = await asyncio.gather(*(creds.refresh() for _ in range(10)))
    assert counting.calls == 1
    assert {r["password"] for r in results} == {"pw"}


async def test_the_composition_root_factory_reads_the_secret_in_the_given_region(
    aws: Any,
) -> None:
    arn = create_secret(aws, rds_secret("from-root"))
    creds = build_credentials(arn, REGION)
    assert (await creds.connection_kwargs())["password"] == "from-root"


async def test_a_missing_secret_is_store_unavailable_naming_it(aws: Any) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:jobq/absent-AbCdEf"
    creds = SecretsManagerCredentials(arn, client_factory=secretsmanager)
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException") as raised:
        await creds.connection_kwargs()
    assert arn in str(raised.value)


async def test_a_secret_scheduled_for_deletion_is_store_unavailable(aws: Any) -> None:
    arn = create_secret(aws, rds_secret("doomed"))
    aws.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    creds = SecretsManagerCredentials(arn, client_factory=secretsmanager)
    with pytest.raises(StoreUnavailable, match="InvalidRequestException") as raised:
        await creds.connection_kwargs()
    assert arn in str(raised.value)
    assert "doomed" not in str(raised.value)


@pytest.mark.parametrize(
    ("secret_string", "problem"),
    [
        ("hunter2-plain", "not a JSON object"),
        (json.dumps({"username": "jobq", "pass": "hunter2-plain"}), "lacks"),
    ],
    ids=["not-json", "no-password"],
)
async def test_an_unusable_secret_is_store_unavailable_without_its_contents(
    aws: Any, secret_string: str, problem: str
) -> None:
    arn = create_secret(aws, secret_string)
    creds = SecretsManagerCredentials(arn, client_factory=secretsmanager)
    with pytest.raises(StoreUnavailable, match=problem) as raised:
        await creds.connection_kwargs()
    assert arn in str(raised.value)
    assert "hunter2-plain" not in str(raised.value)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("AccessDeniedException", "secretsmanager:GetSecretValue"),
        ("DecryptionFailure", "KMS key"),
        ("ResourceNotFoundException", "no such secret"),
    ],
)
async def test_aws_refusals_say_what_to_fix(code: str, hint: str) -> None:
    # moto does not enforce IAM or KMS, so botocore's Stubber plays the service's refusal.
    arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:jobq/db-AbCdEf"
    client = secretsmanager()
    stubber = Stubber(client)
    stubber.add_client_error("get_secret_value", service_error_code=code, http_status_code=400)
    with stubber:
        creds = SecretsManagerCredentials(arn, client_factory=lambda: client)
        with pytest.raises(StoreUnavailable) as raised:
            await creds.connection_kwargs()
    assert arn in str(raised.value)
    assert code in str(raised.value)
    assert hint in str(raised.value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[Path, int]]:
    """A throwaway PostgreSQL 15 on loopback: superuser by socket, password logins by TCP."""
    if not (PG_BIN / "postgres").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    base = Path(tempfile.mkdtemp(prefix="jq-credentials-pg-"))
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", free_port()
    subprocess.run(
        [*as_postgres, PG_BIN / "initdb", "-D", data, "-U", "postgres",
         "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = subprocess.Popen(
        [*as_postgres, PG_BIN / "postgres", "-D", data, "-k", base,
         "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(host=str(base), port=port, user="postgres").close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield base, port
    finally:
        # runuser does not pass signals on: stop the postmaster itself, by its own pid file.
        pid_file = data / "postmaster.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def set_password(postgres: tuple[Path, int], password: str) -> None:
    socket_dir, port = postgres
    with psycopg.connect(host=str(socket_dir), port=port, user="postgres", autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS jobq")
        conn.execute(sql.SQL("CREATE ROLE jobq LOGIN PASSWORD {}").format(sql.Literal(password)))


async def test_a_wrong_password_from_a_real_server_is_an_auth_failure(
    postgres: tuple[Path, int],
) -> None:
    set_password(postgres, "right")
    _, port = postgres
    with pytest.raises(psycopg.OperationalError) as raised:
        await psycopg.AsyncConnection.connect(
            host="127.0.0.1", port=port, user="jobq", password="wrong", dbname="postgres"
        )
    assert is_auth_failure(raised.value)


async def test_an_unreachable_server_is_not_an_auth_failure() -> None:
    with pytest.raises(psycopg.OperationalError) as raised:
        await psycopg.AsyncConnection.connect(
            host="127.0.0.1", port=free_port(), user="jobq", password="x", connect_timeout=5
        )
    assert not is_auth_failure(raised.value)


async def test_after_a_rotation_one_refresh_lets_the_next_connect_succeed(
    aws: Any, postgres: tuple[Path, int]
) -> None:
    # Given a pool that has read the login, and a database that accepts it
    _, port = postgres
    set_password(postgres, "v1")
    arn = create_secret(aws, rds_secret("v1", port=port))
    creds = SecretsManagerCredentials(arn, client_factory=secretsmanager)
    conn = await psycopg.AsyncConnection.connect(**await creds.connection_kwargs())
    await conn.close()
    # When the rotation changes the password in the database and then in the secret
    with psycopg.connect(host=str(postgres[0]), port=port, user="postgres") as admin:
        admin.execute("ALTER ROLE jobq PASSWORD 'v2'")
        admin.commit()
    aws.put_secret_value(SecretId=arn, SecretString=rds_secret("v2", port=port))
    # Then the cached login is rejected as an auth failure, and after refresh() it works
    with pytest.raises(psycopg.OperationalError) as raised:
        await psycopg.AsyncConnection.connect(**await creds.connection_kwargs())
    assert is_auth_failure(raised.value)
    conn = await psycopg.AsyncConnection.connect(**await creds.refresh())
    assert (await (await conn.execute("SELECT current_user")).fetchone()) == ("jobq",)
    await conn.close()
