"""A real server and a real Worker under hostile outcomes and outages (issue 9, findings 1, 5).

On PostgreSQL, whose text columns cannot hold NUL: the case that stalled a worker for ever.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from jobq.client import AsyncClient
from jobq.config import ServerSettings
from jobq.core.errors import Unavailable
from jobq.core.states import JobState
from jobq.server.app import ServerApp
from jobq.worker.task import Task
from tests.auth_keys import BOOTSTRAP_KEYS, OWNER_KEY

from .inprocess import running_worker

FINAL = {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED}
LIVENESS = 30.0  # seconds: a job not final by then is stalled, not slow


async def nul(payload: Any) -> None:
    raise ValueError("bad\x00byte")


async def deep(payload: Any) -> Any:
    value: Any = 1
    for _ in range(975):
        value = [value]
    return value


async def ok(payload: Any) -> Any:
    return payload


def settings(database_url: str, port: int = 0, **more: Any) -> ServerSettings:
    return ServerSettings(
        grpc_port=port,
        http_port=0,
        database_url=database_url,
        scheduler_interval=dt.timedelta(milliseconds=50),
        shutdown_grace=dt.timedelta(seconds=1),
        auth_bootstrap_keys=BOOTSTRAP_KEYS,
        **more,
    )


@pytest.fixture
async def pg_app(pg_databases: Any) -> AsyncIterator[ServerApp]:
    app = ServerApp(settings(pg_databases.create()))
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def until(condition: Callable[[], Any]) -> None:
    async def poll() -> None:
        while not await condition():  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), LIVENESS)


async def test_pg_a_nul_in_one_error_and_a_too_deep_result_stall_no_other_job(
    pg_app: ServerApp,
) -> None:
    # Given 20 ordinary jobs, one whose task raises with a NUL in its message and one whose
    # result nests 975 levels deep, on PostgreSQL
    tasks = {"ok": Task("ok", ok), "nul": Task("nul", nul), "deep": Task("deep", deep)}
    async with AsyncClient(f"127.0.0.1:{pg_app.grpc_port}", token=OWNER_KEY) as client:
        bad = [
            await client.submit("nul", {}, max_attempts=1),
            await client.submit("deep", {}, max_attempts=1),
        ]
        good = [await client.submit("ok", {"n": n}) for n in range(20)]
        ids = [j.id for j in bad + good]

        async def all_final() -> bool:
            states = [(await client.get(i)).state for i in ids]
            return all(state in FINAL for state in states)

        # When one worker runs them all
        async with running_worker(pg_app, tasks):
            # Then every one of the 22 reaches a final state: nothing waits behind the bad two
            await until(all_final)
        for job in good:
            assert (await client.get(job.id)).state is JobState.SUCCEEDED
        failed_nul, failed_deep = [await client.get(j.id) for j in bad]
        assert failed_nul.state is JobState.DEAD
        assert "ValueError: bad" in (failed_nul.last_error or "")
        assert "\x00" not in (failed_nul.last_error or "")
        assert failed_deep.state is JobState.DEAD
        assert "nested deeper than" in (failed_deep.last_error or "")


def heartbeats_of(worker: Any) -> list[float]:
    """When each of `worker`'s heartbeats was answered."""
    answered: list[float] = []
    send = worker._conn.heartbeat

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        response = await send(*args, **kwargs)
        answered.append(time.monotonic())
        return response

    worker._conn.heartbeat = recorded
    return answered


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_server_restart_shorter_than_the_lease_does_not_run_a_job_twice(
    tmp_path: Path,
) -> None:
    # Given a job running under a 3s lease on a worker that keeps heartbeating
    runs: list[int] = []
    release = asyncio.Event()

    async def slow(payload: Any, ctx: Any) -> str:
        runs.append(ctx.attempt)
        await release.wait()
        return "done"

    port = free_port()
    config = settings(
        f"sqlite:///{tmp_path}/jobq.db", port, default_lease_timeout=dt.timedelta(seconds=3)
    )
    server = ServerApp(config)
    await server.start()
    async with AsyncClient(f"127.0.0.1:{port}", token=OWNER_KEY) as client:
        job = await client.submit("slow", {})
        async with running_worker(server, {"slow": Task("slow", slow)}) as worker:
            beats = heartbeats_of(worker)
            while not runs or not beats:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            # When the server stops most of a heartbeat interval (1s) after the lease was last
            # extended, and is down for 2.5s: less than the lease, but more than it had left
            seen = len(beats)
            while len(beats) == seen:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.9)
            await server.stop()
            await asyncio.sleep(2.5)
            server = ServerApp(config)
            await server.start()
            # and comes back while the job runs on for two more lease periods
            await asyncio.sleep(6)
            release.set()

            async def finished() -> bool:
                return (await client.get(job.id)).state in FINAL

            await until(finished)
        # Then it ran once, and its lease never expired
        done = await client.get(job.id)
        kinds = [e.kind.value for e in await server.service.store.jobs.events(job.id)]
        await server.stop()
        assert (done.state, done.attempt, runs) == (JobState.SUCCEEDED, 1, [1])
        assert "lease_expired" not in kinds


async def test_a_job_reaped_while_its_worker_was_cut_off_is_not_run_twice_by_it(
    tmp_path: Path,
) -> None:
    # Given a job running under a 1s lease, on the only worker
    runs: list[int] = []
    release = asyncio.Event()

    async def slow(payload: Any, ctx: Any) -> str:
        runs.append(ctx.attempt)
        await release.wait()
        return "done"

    config = settings(
        f"sqlite:///{tmp_path}/jobq.db",
        default_lease_timeout=dt.timedelta(seconds=1),
        default_backoff_base=dt.timedelta(milliseconds=100),
    )
    server = ServerApp(config)
    await server.start()
    try:
        async with AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client:
            job = await client.submit("slow", {})
            async with running_worker(server, {"slow": Task("slow", slow)}) as worker:
                cut_off = [False]
                send = worker._conn.heartbeat

                async def heartbeat(*args: Any, **kwargs: Any) -> Any:
                    if cut_off[0]:
                        raise Unavailable("cut off")
                    return await send(*args, **kwargs)

                worker._conn.heartbeat = heartbeat  # type: ignore[method-assign]
                while not runs:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                # When its heartbeats do not get through, the server reaps attempt 1 and hands
                # the same worker attempt 2 while attempt 1 still runs there
                cut_off[0] = True

                async def second_attempt_leased() -> bool:
                    got = await client.get(job.id)
                    return (got.attempt, got.state) == (2, JobState.RUNNING)

                await until(second_attempt_leased)
                cut_off[0] = False
                await asyncio.sleep(1.5)  # more than a lease: attempt 2 must be heartbeated
                release.set()

                async def finished() -> bool:
                    return (await client.get(job.id)).state in FINAL

                await until(finished)
            # Then the worker ran the job once, and reported it under attempt 2
            done = await client.get(job.id)
            assert (done.state, done.attempt, runs) == (JobState.SUCCEEDED, 2, [1])
    finally:
        await server.stop()
