"""The blocking SDK: the asyncio client run on a private event loop thread.

Each method mirrors AsyncClient's; nothing is written twice.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from jobq.client._async import DEFAULT_ADDRESS, AsyncClient
from jobq.core.model import Job

T = TypeVar("T")


class Client:
    """`with Client("host:50051") as client: client.submit("echo", {"msg": "hi"})`."""

    def __init__(self, address: str = DEFAULT_ADDRESS, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="jobq-client", daemon=True
        )
        self._thread.start()
        self._async: AsyncClient = self._run(_make(address, options))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __getattr__(self, name: str) -> Any:
        """submit, submit_many, get, list, cancel, wait, queues, workers, dead letters: as in
        AsyncClient, blocking."""
        method = getattr(self._async, name)
        if not callable(method) or name.startswith("_") or name in ("watch", "aclose"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(method(*args, **kwargs))

        return call

    def watch(self, job_id: str) -> Iterator[Job]:
        stream = self._async.watch(job_id)
        try:
            while True:
                try:
                    yield self._run(anext(stream))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())  # type: ignore[attr-defined]


async def _make(address: str, options: dict[str, Any]) -> AsyncClient:
    # The channel must be created on the loop that will run its calls.
    return AsyncClient(address, **options)
