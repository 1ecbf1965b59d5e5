"""A real jq-server held in this process for tests: the embedded store in a temp directory."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from jobq.client import AsyncClient, Client
from jobq.config import ServerSettings
from jobq.server.app import ServerApp
from jobq.worker.connection import WorkerConnection
from jobq.worker.runner import Worker, WorkerOptions
from jobq.worker.task import Task

T = TypeVar("T")


def _settings(directory: Path, overrides: dict[str, Any]) -> ServerSettings:
    # No credentials: like `make run`, the server runs unauthenticated, on loopback only.
    values: dict[str, Any] = {
        "grpc_port": 0,
        "http_port": 0,
        "database_url": f"sqlite:///{directory}/jobq.db",
        "auth_unauthenticated": True,
        "scheduler_interval": dt.timedelta(milliseconds=50),
        "shutdown_grace": dt.timedelta(seconds=1),
    }
    return ServerSettings(**(values | overrides))


class InMemoryServer:
    """`async with InMemoryServer() as server:` a jq-server on free loopback ports.

    `server.client()` is an AsyncClient for it; `async with server.worker(task, ...)` runs a
    worker with those tasks until the block ends. `settings`: ServerSettings fields to change.
    """

    def __init__(self, directory: Path | None = None, **settings: Any) -> None:
        self._temp = None if directory else tempfile.TemporaryDirectory(prefix="jobq-test-")
        self.directory = directory or Path(self._temp.name)  # type: ignore[union-attr]
        self.directory.mkdir(parents=True, exist_ok=True)
        self.app = ServerApp(_settings(self.directory, settings))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()
        if self._temp is not None:
            self._temp.cleanup()

    async def __aenter__(self) -> InMemoryServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def client(self, **options: Any) -> AsyncClient:
        return AsyncClient(self.address, **options)

    @contextlib.asynccontextmanager
    async def worker(
        self, *tasks: Task, queues: Iterable[str] = (), concurrency: int = 4, token: str = ""
    ) -> AsyncIterator[Worker]:
        """A worker running `tasks` (on their queues, or `queues`) until the block ends;
        `token`: its credential, for a server started with authentication."""
        connection = WorkerConnection(self.address, token)
        options = WorkerOptions(
            queues=list(queues) or sorted({t.queue for t in tasks}),
            concurrency=concurrency,
            lease_wait=dt.timedelta(milliseconds=200),
            grace_period=dt.timedelta(seconds=5),
        )
        worker = Worker(connection, {t.name: t for t in tasks}, options)
        run = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(worker.registered.wait(), 10)
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(run, 15)
            await connection.close()


class ServerThread:
    """InMemoryServer for synchronous tests: it runs on its own event loop thread.

    `server.client()` is a blocking Client; `with server.worker(task): ...` runs a worker.
    """

    def __init__(self, directory: Path | None = None, **settings: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="jobq-test-server")
        self._thread.start()
        self.server: InMemoryServer = self._run(_make(directory, settings))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def http_url(self) -> str:
        return self.server.http_url

    def start(self) -> ServerThread:
        self._run(self.server.start())
        return self

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.server.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, **options: Any) -> Client:
        return Client(self.address, **options)

    @contextlib.contextmanager
    def worker(self, *tasks: Task, queues: Iterable[str] = (), token: str = "") -> Iterator[None]:
        manager = self.server.worker(*tasks, queues=queues, token=token)
        self._run(manager.__aenter__())
        try:
            yield
        finally:
            self._run(manager.__aexit__(None, None, None))


async def _make(directory: Path | None, settings: dict[str, Any]) -> InMemoryServer:
    # Built on the thread's loop: the store and the server bind to the loop they start on.
    return InMemoryServer(directory, **settings)
