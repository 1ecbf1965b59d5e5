"""The blocking Client: generated from AsyncClient, typed, and checked like it."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api as mypy_api

import jobq
from jobq import AsyncClient, Client, InvalidArgument
from jobq.client._schedules import AsyncSchedules
from jobq.client._sync import Schedules

ROOT = Path(__file__).resolve().parents[2]


def _public_coroutines(cls: type = AsyncClient) -> list[str]:
    return [
        name
        for name, member in inspect.getmembers(cls)
        if not name.startswith("_")
        and name != "aclose"
        and (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
    ]


def test_generated_sync_client_is_up_to_date() -> None:
    # Given AsyncClient as it is, when the generator runs with --check, it finds nothing stale.
    result = subprocess.run(
        [sys.executable, "scripts/generate_sync_client.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_async_method_has_a_sync_twin_with_its_signature() -> None:
    names = _public_coroutines()
    assert {"submit", "get", "list", "cancel", "wait", "replay_dead", "watch"} <= set(names)
    for name in names:
        assert name in dir(Client), name
        sync = inspect.signature(getattr(Client, name))
        async_ = inspect.signature(getattr(AsyncClient, name))
        assert list(sync.parameters) == list(async_.parameters), name


def test_the_schedules_sub_client_has_sync_twins_too() -> None:
    # Given AsyncClient.schedules (an AsyncSchedules), Client.schedules mirrors its methods.
    names = _public_coroutines(AsyncSchedules)
    assert {"create", "get", "list", "pause", "resume", "trigger", "delete"} <= set(names)
    with Client("127.0.0.1:1") as client:
        assert isinstance(client.schedules, Schedules)
        for name in names:
            sync = inspect.signature(getattr(client.schedules, name))
            async_ = inspect.signature(getattr(AsyncSchedules, name))
            assert list(sync.parameters) == list(async_.parameters)[1:], name


def test_a_type_checker_sees_the_sync_methods(tmp_path: Path) -> None:
    snippet = tmp_path / "use_client.py"
    snippet.write_text(
        "from jobq import Client, Job\n"
        "def use(client: Client) -> None:\n"
        "    job: Job = client.submit('echo', {'a': 1}, delay='1s')\n"
        "    wrong: int = client.get(job.id)\n"
        "    also_wrong: int = client.schedules.trigger('nightly')\n"
    )
    out, _, status = mypy_api.run(["--strict", "--no-incremental", str(snippet)])
    assert status == 1
    assert 'Incompatible types in assignment (expression has type "Job"' in out
    assert 'Incompatible types in assignment (expression has type "ScheduleRun"' in out
    assert out.count("error:") == 2, out


def test_a_misspelt_keyword_is_a_type_error_naming_the_public_method() -> None:
    with Client("127.0.0.1:1") as client, pytest.raises(TypeError) as raised:
        client.submit("echo", {}, dealy="10m")  # type: ignore[call-arg]
    assert "submit() got an unexpected keyword argument 'dealy'" in str(raised.value)


async def test_an_unserialisable_payload_is_invalid_argument() -> None:
    async with AsyncClient("127.0.0.1:1") as client:
        with pytest.raises(InvalidArgument) as raised:
            await client.submit("echo", {"when": object()})
    assert raised.value.field == "payload"
    assert isinstance(raised.value, jobq.JobqError)


def test_the_address_comes_from_jq_server_address() -> None:
    code = "from jobq import Client\nwith Client() as c: print(c.address)"
    env = {**os.environ, "JQ_SERVER_ADDRESS": "127.0.0.9:4567"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "127.0.0.9:4567"
