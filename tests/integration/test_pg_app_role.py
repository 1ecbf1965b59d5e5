"""The application's own PostgreSQL login (migration 0010, ADR 0019): it runs the queue and
cannot change the schema; migrations and the login's password are the owner's.

The harness's PostgreSQL trusts every local login (initdb -A trust), so these tests prove
what the role may do, and that the owner stored a SCRAM verifier for the password; that RDS
then checks the password is PostgreSQL's own behaviour.
"""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from jobq.client import AsyncClient
from jobq.core.errors import StoreUnavailable
from jobq.core.model import QueueConfig
from jobq.core.states import JobState
from jobq.store.postgres import PostgresStore
from jobq.worker.task import Task
from tests.auth_keys import OWNER_KEY

from .backends import running
from .inprocess import running_worker
from .test_pg_session import open_store, woken_by_the_others_submit
from .test_worker_faults import until

APP_ROLE = "jobq_app"
DEFAULTS = QueueConfig(name="default")


def as_login(url: str, user: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{user}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


@pytest.fixture
def owner_url(pg_databases: Any) -> str:
    # Migrated by the harness's owner (postgres), as the init container migrates as RDS's master.
    return str(pg_databases.create())


async def grant(owner_url: str, user: str, password: str) -> None:
    await PostgresStore(owner_url, DEFAULTS).grant_app_login(user, password)


def password_of(owner_url: str, user: str) -> str | None:
    with psycopg.connect(owner_url, autocommit=True) as conn:
        query = "SELECT rolpassword FROM pg_authid WHERE rolname = %s"
        row = conn.execute(query, (user,)).fetchone()
        return None if row is None else row[0]


async def test_the_app_login_runs_the_queue_end_to_end(owner_url: str) -> None:
    # Given the owner gave the app login its password after migrating
    await grant(owner_url, APP_ROLE, "first-password")
    verifier = password_of(owner_url, APP_ROLE)
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$")
    assert "first-password" not in verifier
    app_url = as_login(owner_url, APP_ROLE)

    async def ok(payload: Any) -> Any:
        return payload

    # When a server logged in as that role (migrations left to the owner) serves a worker
    async with running(app_url, migrate_on_start=False) as app:
        # Then it is ready (the readiness check reads the migration tool's tables)
        assert await app.readiness() is None
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client:
            job = await client.submit("ok", {"n": 1})
            # lease and complete through the worker protocol, woken by LISTEN/NOTIFY
            async with running_worker(app, {"ok": Task("ok", ok)}):

                async def done() -> bool:
                    return (await client.get(job.id)).state is JobState.SUCCEEDED

                await until(done)
            assert (await client.get(job.id)).result == {"n": 1}


async def test_the_app_login_listens_notifies_and_takes_the_leader_lock(owner_url: str) -> None:
    # Given two replicas' stores logged in as the app role
    app_url = as_login(owner_url, APP_ROLE)
    submitter, listener = await open_store(app_url), await open_store(app_url)
    try:
        # When one submits, the other's LISTEN hears its NOTIFY
        async with woken_by_the_others_submit(submitter, listener):
            # And the leader lock (an advisory lock) is one replica's at a time
            assert await submitter.leader.try_acquire()
            assert not await listener.leader.try_acquire()
    finally:
        await submitter.close()
        await listener.close()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE evil (id int)",
        "DROP TABLE jobs",
        "ALTER TABLE jobs ADD COLUMN evil int",
        "TRUNCATE jobs",
        "CREATE INDEX evil ON jobs (queue)",
        "CREATE ROLE evil",
        "DELETE FROM _yoyo_log",
        "ALTER ROLE jobq_app CREATEDB",
    ],
)
def test_the_app_login_cannot_change_the_schema(owner_url: str, statement: str) -> None:
    with (
        psycopg.connect(as_login(owner_url, APP_ROLE), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_tables_a_later_migration_creates_are_the_app_logins_too(owner_url: str) -> None:
    # Given the owner creates a table after 0010, as migrations 0011+ will
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute("CREATE TABLE later (id serial PRIMARY KEY, v text)")
    # Then the app login may write it (default privileges), still not drop it
    with psycopg.connect(as_login(owner_url, APP_ROLE), autocommit=True) as app:
        app.execute("INSERT INTO later (v) VALUES ('x')")
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("DROP TABLE later")


async def test_migrations_are_the_owners_and_the_app_login_cannot_run_them(
    pg_server: Any,
) -> None:
    name = f"role_{uuid.uuid4().hex[:10]}"
    pg_server.execute(f"CREATE DATABASE {name}")
    owner_url = pg_server.url(name)
    defaults = DEFAULTS
    # Given a migrated database (so the app role exists cluster-wide)
    await PostgresStore(owner_url, defaults).migrate()
    # When the app login tries to migrate, nothing is left to apply, but it may not even lock
    app = PostgresStore(as_login(owner_url, APP_ROLE), defaults)
    assert await app.migrations_pending() == 0
    with pytest.raises(StoreUnavailable):
        await app.migrate()
    # And a second login (Secrets Manager's alternating user) gets the role's grants
    await grant(owner_url, "jobq_app_clone", "second-password")
    with psycopg.connect(as_login(owner_url, "jobq_app_clone"), autocommit=True) as clone:
        clone.execute("SELECT count(*) FROM jobs")
        with pytest.raises(errors.InsufficientPrivilege):
            clone.execute("DROP TABLE jobs")
    # And the owner itself is refused as the app login
    with pytest.raises(StoreUnavailable, match="login of its own"):
        await grant(owner_url, "postgres", "x")
