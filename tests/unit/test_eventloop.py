"""jq-server and jq-worker run on the loop JQ_EVENT_LOOP names: uvloop unless told asyncio."""

from __future__ import annotations

import asyncio

import pytest

from jobq import eventloop
from jobq.config import ConfigError, ServerSettings, WorkerSettings, load


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_the_default_loop_is_uvloop_and_asyncio_can_be_chosen() -> None:
    assert eventloop.run(_loop_module()) == "uvloop"
    assert eventloop.run(_loop_module(), "asyncio") == "asyncio"


@pytest.mark.parametrize("cls", [ServerSettings, WorkerSettings])
def test_jq_event_loop_is_checked_and_named_when_wrong(cls) -> None:
    assert load(cls).event_loop == "uvloop"
    assert load(cls, event_loop="asyncio").event_loop == "asyncio"
    with pytest.raises(ConfigError, match="JQ_EVENT_LOOP"):
        load(cls, event_loop="tokio")
