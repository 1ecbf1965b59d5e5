"""The store contract: one suite, every backend. A backend joins by adding a factory here."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from jobq.core.model import QueueConfig
from jobq.store.base import Store

QUEUE_DEFAULTS = QueueConfig(name="default")

StoreFactory = Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]


async def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    from jobq.store.sqlite import SqliteStore

    return SqliteStore(tmp_path / "jobq.db", QUEUE_DEFAULTS, rng=random.Random(7))


async def postgres_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    from jobq.store.postgres import PostgresStore

    url = request.getfixturevalue("pg_databases").create()
    return PostgresStore(url, QUEUE_DEFAULTS, pool_min=1, pool_max=4, rng=random.Random(7))


BACKENDS: dict[str, StoreFactory] = {"sqlite": sqlite_store, "postgres": postgres_store}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = await BACKENDS[request.param](request, tmp_path)
    await made.migrate()
    await made.open()
    try:
        yield made
    finally:
        await made.close()
