"""The event loop jq-server and jq-worker run on: uvloop where it is installed, else asyncio's.

uvloop (libuv) runs the same coroutines with a cheaper loop: fewer microseconds per wake-up,
socket read and timer, which the server pays per RPC and the worker per job (ADR 0018).
It has no Windows build, so a platform without it runs on asyncio's loop unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]

log = logging.getLogger("jobq")


def loop_factory(wanted: LoopName) -> type[asyncio.AbstractEventLoop] | None:
    """uvloop's loop class when `wanted` is uvloop and it imports; None: asyncio's default."""
    if wanted != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log.info("uvloop is not installed; running on asyncio's event loop")
        return None
    return uvloop.Loop


def run(main: Coroutine[Any, Any, T], wanted: LoopName = "uvloop") -> T:
    """`asyncio.run(main)` on the loop `wanted` (JQ_EVENT_LOOP)."""
    factory = loop_factory(wanted)
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
