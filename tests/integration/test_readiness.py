"""Readiness tells the truth: a store that cannot take a write is not ready, and a server
that cannot start says why in one line. One server per SQLite file (ADR 0004).

Tests run as root, for whom a chmod'ed file is still writable; `chattr +i` makes a file
read-only even for root, and a small tmpfs mounted here makes a disk that fills up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from jobq.config import ServerSettings
from jobq.core.errors import StoreUnavailable
from jobq.core.model import QueueConfig
from jobq.server.app import ServerApp
from jobq.store.sqlite import SqliteStore
from tests.auth_keys import BOOTSTRAP_KEYS

BIN = Path(sys.executable).parent


def settings(url: str, **overrides: object) -> ServerSettings:
    values: dict[str, object] = {
        "grpc_port": 0,
        "http_port": 0,
        "database_url": url,
        "scheduler_interval": dt.timedelta(milliseconds=50),
        "shutdown_grace": dt.timedelta(seconds=1),
        "auth_bootstrap_keys": BOOTSTRAP_KEYS,
    }
    return ServerSettings(**(values | overrides))  # type: ignore[arg-type]


async def migrated(path: Path) -> Path:
    """A database as a server leaves it (migrated, in WAL mode)."""
    store = SqliteStore(path, QueueConfig(name="default"))
    await store.migrate()
    await store.open()
    await store.close()
    return path


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """The file refuses writes, root's too, until the block ends."""
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this filesystem")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    # Unbuffered: the write that finds the disk full raises here, and close has nothing to flush.
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def readyz(app: ServerApp) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{app.http_port}/readyz") as response,
    ):
        return response.status, await response.json()


async def test_a_read_only_sqlite_file_is_not_ready(tmp_path: Path) -> None:
    # Given a migrated database file that refuses writes, served without migrate-on-start
    db = await migrated(tmp_path / "jobq.db")
    with immutable(db):
        app = ServerApp(settings(f"sqlite:///{db}", migrate_on_start=False))
        await app.start()
        try:
            # Then /readyz says so, naming the cause
            status, body = await readyz(app)
            assert status == 503
            assert "does not accept writes" in body["reason"]
            assert "readonly" in body["reason"]
        finally:
            await app.stop()


async def test_migrate_on_start_on_a_read_only_file_fails_at_once_in_one_line(
    tmp_path: Path,
) -> None:
    db = await migrated(tmp_path / "jobq.db")
    with immutable(db):
        with pytest.raises(StoreUnavailable, match=r"cannot migrate SQLite .* readonly"):
            await ServerApp(settings(f"sqlite:///{db}")).start()
        cli = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "jq-server")],
            env=os.environ
            | {"JQ_DATABASE_URL": f"sqlite:///{db}", "JQ_GRPC_PORT": "0"}
            | {"JQ_HTTP_PORT": "0", "JQ_LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines() == [
        f"jq-server: cannot migrate SQLite database {db}: attempt to write a readonly database"
    ]


async def test_a_full_disk_is_not_ready_and_ready_again_once_freed(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = await migrated(disk / "jobq.db")
        app = ServerApp(settings(f"sqlite:///{db}", migrate_on_start=False))
        await app.start()
        try:
            assert (await readyz(app))[0] == 200
            # When the disk fills up
            filler = fill(disk)
            status, body = await readyz(app)
            assert status == 503
            assert "full" in body["reason"]
            # Then it is ready again once there is room
            filler.unlink()
            assert (await readyz(app))[0] == 200
        finally:
            await app.stop()


async def test_a_second_server_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobq.db"
    first = ServerApp(settings(url))
    await first.start()
    try:
        with pytest.raises(StoreUnavailable, match="in use by another jq-server"):
            await ServerApp(settings(url)).start()
        assert (await readyz(first))[0] == 200, "the first one keeps serving"
        cli = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "jq-server")],
            env=os.environ
            | {"JQ_DATABASE_URL": url, "JQ_GRPC_PORT": "0", "JQ_HTTP_PORT": "0"}
            | {"JQ_LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 1
        (line,) = cli.stderr.strip().splitlines()
        assert line.startswith("jq-server: SQLite database") and "in use by another" in line
    finally:
        await first.stop()
    # Once the first has stopped, the file is free again
    second = ServerApp(settings(url))
    await second.start()
    await second.stop()


async def test_a_read_only_postgresql_database_is_not_ready(pg_databases) -> None:
    url = pg_databases.create()
    with psycopg.connect(url, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    app = ServerApp(settings(url, migrate_on_start=False, database_pool_min=1))
    await app.start()
    try:
        status, body = await readyz(app)
        assert status == 503
        assert "does not accept writes" in body["reason"] and "read-only" in body["reason"]
    finally:
        await app.stop()
