"""A real jq-server in this process: gRPC and HTTP on loopback port 0, a SQLite file in tmp."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from jobq.client import AsyncClient
from jobq.config import ServerSettings
from jobq.server.app import ServerApp
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY
from tests.integration import authed


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerApp]:
    settings = ServerSettings(
        grpc_port=0,
        http_port=0,
        database_url=f"sqlite:///{tmp_path}/jobq.db",
        max_payload_bytes=1000,
        scheduler_interval=dt.timedelta(milliseconds=50),
        shutdown_grace=dt.timedelta(seconds=1),
        auth_bootstrap_keys=BOOTSTRAP_KEYS,
    )
    app = ServerApp(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


@pytest.fixture
async def client(server: ServerApp) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as c:
        yield c


@pytest.fixture
async def channel(server: ServerApp) -> AsyncIterator[grpc.aio.Channel]:
    async with authed.channel(f"127.0.0.1:{server.grpc_port}") as ch:
        yield ch
