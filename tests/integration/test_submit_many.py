"""`submit_many` keeps several batches in flight and still answers as one call would."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobq.client import AsyncClient
from jobq.core.errors import InvalidArgument
from tests.auth_keys import OWNER_KEY
from tests.integration.inprocess import running_server


async def test_results_keep_the_order_of_the_jobs_with_batches_in_flight(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        progress: list[int] = []
        results = await client.submit_many(
            ({"type": "echo", "payload": i} for i in range(1050)),
            chunk=100,
            in_flight=4,
            on_progress=progress.append,
        )
        assert [r.job.payload for r in results] == list(range(1050))
        assert sorted(progress) == [50] + [100] * 10
        (stats,) = await client.queue_stats("default")
        assert stats.by_state["queued"] == 1050


async def test_a_refused_batch_raises_its_own_error_not_a_group(tmp_path: Path) -> None:
    async with (
        running_server(tmp_path) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        jobs = [{"type": "echo", "payload": i} for i in range(300)]
        jobs[250]["type"] = "not a task name!"
        with pytest.raises(InvalidArgument) as refused:
            await client.submit_many(jobs, chunk=100, in_flight=1)
        assert refused.value.field.startswith("jobs[50]")
        # One batch at a time: the two before it were taken, nothing after it was sent.
        (stats,) = await client.queue_stats("default")
        assert stats.by_state["queued"] == 200
        with pytest.raises(InvalidArgument, match="in_flight"):
            await client.submit_many(jobs, in_flight=0)
