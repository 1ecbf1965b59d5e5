"""`@task`: marks a function as a jobq task. Nothing is registered at import time.

The worker finds tasks by scanning the modules given to `jq-worker --tasks`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import types
from collections.abc import Callable, Iterable
from typing import Any

from jobq.core.durations import parse_duration
from jobq.core.errors import InvalidArgument
from jobq.core.validation import TASK_TYPE, validate_queue_name


class PermanentError(Exception):
    """Raise from a task to fail the job now, without retries (it is dead-lettered)."""


class RetryLater(Exception):
    """Raise from a task to retry after `delay` instead of the queue's backoff."""

    def __init__(self, delay: str | float | dt.timedelta, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay = parse_duration(delay)


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    fn: Callable[..., Any]
    queue: str = "default"
    max_attempts: int = 0
    timeout: dt.timedelta | None = None

    # Read once per job: worked out once per task (inspect.signature is costly).
    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @functools.cached_property
    def takes_context(self) -> bool:
        return len(inspect.signature(self.fn).parameters) >= 2

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling a task calls the function, so tasks stay plain functions in tests."""
        return self.fn(*args, **kwargs)


def task(
    name: str,
    *,
    queue: str = "default",
    max_attempts: int = 0,
    timeout: str | float | dt.timedelta | None = None,
) -> Callable[[Callable[..., Any]], Task]:
    """Declare a task: `@task("email.send", queue="emails", max_attempts=5, timeout="30s")`.

    The function takes `(payload)` or `(payload, ctx)`, may be async or not, and returns a
    JSON-serialisable result.
    """
    if not TASK_TYPE.match(name):
        raise ValueError(f"task name {name!r}: letters, digits, '.', '_', ':', '-'")
    try:
        validate_queue_name(queue)
    except InvalidArgument as exc:
        raise ValueError(f"task {name!r}: {exc}") from None
    limit = parse_duration(timeout) if timeout is not None else None

    def wrap(fn: Callable[..., Any]) -> Task:
        return Task(name=name, fn=fn, queue=queue, max_attempts=max_attempts, timeout=limit)

    return wrap


def collect_tasks(modules: Iterable[types.ModuleType]) -> dict[str, Task]:
    """Every Task defined at the top level of `modules`, by name. Duplicate names are an error."""
    found: dict[str, Task] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, Task):
                other = found.get(value.name)
                if other is not None and other.fn is not value.fn:
                    raise ValueError(f"two tasks are named {value.name!r}")
                found[value.name] = value
    return found
