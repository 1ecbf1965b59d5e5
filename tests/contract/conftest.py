"""The store contract: one suite, every backend. A backend joins by adding a factory here."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from jobq.core.model import QueueConfig
from jobq.store.base import Store

QUEUE_DEFAULTS = QueueConfig(name="default")

StoreFactory = Callable[[Path], Awaitable[Store]]


async def sqlite_store(tmp_path: Path) -> Store:
    from jobq.store.sqlite import SqliteStore

    return SqliteStore(tmp_path / "jobq.db", QUEUE_DEFAULTS, rng=random.Random(7))


BACKENDS: dict[str, StoreFactory] = {"sqlite": sqlite_store}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = await BACKENDS[request.param](tmp_path)
    await made.migrate()
    await made.open()
    try:
        yield made
    finally:
        await made.close()
