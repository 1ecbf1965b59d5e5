"""WatchJob sends a job once and then what changed; a watcher that does not read, and a
connection that is idle or half-open, do not hold the server's resources for ever."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobq import examples
from jobq.client import AsyncClient
from jobq.config import ServerSettings
from jobq.core.states import JobState
from jobq.server.app import ServerApp, keepalive_options
from jobq.v1 import job_service_pb2, job_service_pb2_grpc
from jobq.worker.task import collect_tasks
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY
from tests.integration import authed
from tests.integration.inprocess import running_worker

BIG = {"blob": "x" * 1_000_000}  # a payload near JQ_MAX_PAYLOAD_BYTES


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any) -> AsyncIterator[ServerApp]:
    values: dict[str, Any] = {
        "grpc_port": 0,
        "http_port": 0,
        "database_url": f"sqlite:///{tmp_path}/jobq.db",
        "scheduler_interval": dt.timedelta(milliseconds=50),
        "shutdown_grace": dt.timedelta(seconds=1),
        "auth_bootstrap_keys": BOOTSTRAP_KEYS,
    }
    app = ServerApp(ServerSettings(**(values | overrides)))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def gauge(app: ServerApp, name: str) -> float:
    return app.metrics.registry.get_sample_value(name) or 0.0


BOUND = 20.0  # seconds: generous, for something the server does on its own


async def eventually(predicate: Any, what: str) -> None:
    """Wait for the server to do something by itself; the bound is no timing assertion."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_watcher_of_a_big_job_gets_it_once_then_small_updates(tmp_path: Path) -> None:
    async with (
        serving(tmp_path) as app,
        AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client,
        authed.channel(f"127.0.0.1:{app.grpc_port}") as channel,
    ):
        # 1.5 s of steps spans several 0.5 s progress reports, even on a loaded machine.
        payload = BIG | {"steps": 5, "step_seconds": 0.3}
        job = await client.submit("progress", payload)
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        raw = stub.WatchJob(job_service_pb2.WatchJobRequest(id=job.id))
        seen = client.watch(job.id)
        async with running_worker(app, collect_tasks([examples])):
            messages = [m async for m in raw]
            jobs = [j async for j in seen]
    first, *changes = messages
    # Then the first message carries the job, payload and all
    assert first.WhichOneof("update") == "job" and json.loads(first.job.payload) == payload
    assert first.ByteSize() > 1_000_000
    # And every later one only what changed: small, whatever the payload's size
    assert len(changes) >= 3, "running, some progress, succeeded"
    assert all(m.WhichOneof("update") == "change" for m in changes)
    assert max(m.ByteSize() for m in changes) < 1_000
    # The result comes once, with the terminal state
    with_result = [m for m in changes if m.change.HasField("result")]
    assert len(with_result) == 1 and with_result[0] is changes[-1]
    assert json.loads(changes[-1].change.result) == {"steps": 5}
    # And the SDK still yields whole jobs: the first one with the changes applied
    assert jobs[-1].state is JobState.SUCCEEDED
    assert jobs[-1].result == {"steps": 5}
    assert all(j.payload == payload for j in jobs)


async def test_a_watcher_that_never_reads_is_dropped(tmp_path: Path) -> None:
    async with serving(tmp_path, stream_send_timeout=dt.timedelta(milliseconds=300)) as app:
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client:
            job = await client.submit("echo", BIG)
        # A client whose HTTP/2 window stays at its initial 64 KiB and that reads nothing
        options = [("grpc.http2.bdp_probe", 0), ("grpc.max_receive_message_length", 8 << 20)]
        async with authed.channel(f"127.0.0.1:{app.grpc_port}", options=options) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            call = stub.WatchJob(job_service_pb2.WatchJobRequest(id=job.id))
            await eventually(lambda: gauge(app, "jq_grpc_streams_open") == 1, "the stream")
            # Then the server ends the stream's task by itself
            await eventually(lambda: gauge(app, "jq_grpc_streams_open") == 0, "the drop")
            assert gauge(app, "jq_grpc_streams_dropped_total") == 1
            call.cancel()


async def test_an_idle_connection_is_closed_after_max_connection_idle(tmp_path: Path) -> None:
    async with (
        serving(tmp_path, grpc_max_connection_idle=dt.timedelta(milliseconds=500)) as app,
        authed.channel(f"127.0.0.1:{app.grpc_port}") as channel,
    ):
        stub = job_service_pb2_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetJob(job_service_pb2.GetJobRequest(id="no-such-job"))
        assert channel.get_state() is grpc.ChannelConnectivity.READY
        # Then the server closes the connection the client left idle (GOAWAY)
        await eventually(
            lambda: channel.get_state() is grpc.ChannelConnectivity.IDLE, "the idle close"
        )


async def test_a_half_open_watcher_is_dropped_after_the_keepalive_timeout(tmp_path: Path) -> None:
    # Given a job nobody runs (so its stream has nothing to send) watched from another process
    settings = {
        "grpc_keepalive_time": dt.timedelta(milliseconds=500),
        "grpc_keepalive_timeout": dt.timedelta(milliseconds=500),
    }
    async with serving(tmp_path, **settings) as app:
        async with AsyncClient(f"127.0.0.1:{app.grpc_port}", token=OWNER_KEY) as client:
            job = await client.submit("echo", {"n": 1})
        watcher = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).with_name("watch_client.py")),
            f"127.0.0.1:{app.grpc_port}",
            job.id,
            OWNER_KEY,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert watcher.stdout is not None
            assert await asyncio.wait_for(watcher.stdout.readline(), BOUND) == b"update\n"
            assert gauge(app, "jq_grpc_streams_open") == 1
            # When its process freezes (the connection stays open, nothing answers a ping)
            os.kill(watcher.pid, signal.SIGSTOP)
            # Then the server's keepalive finds it gone and ends the stream
            await eventually(lambda: gauge(app, "jq_grpc_streams_open") == 0, "the half-open drop")
        finally:
            watcher.kill()
            await watcher.wait()


def test_keepalive_settings_reach_grpc_core_by_its_option_names() -> None:
    settings = ServerSettings(
        grpc_keepalive_time=dt.timedelta(seconds=7),
        grpc_keepalive_timeout=dt.timedelta(seconds=3),
        grpc_keepalive_permit_without_calls=False,
        grpc_max_connection_idle=dt.timedelta(minutes=2),
        grpc_client_ping_min_interval=dt.timedelta(seconds=5),
    )
    options = dict(keepalive_options(settings))
    assert options["grpc.keepalive_time_ms"] == 7000
    assert options["grpc.keepalive_timeout_ms"] == 3000
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.max_connection_idle_ms"] == 120000
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == 5000
