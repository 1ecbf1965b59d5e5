"""@task declares without registering; the worker collects from modules."""

import types

import pytest

from jobq.worker.task import Task, collect_tasks, task


def test_task_keeps_the_function_callable_and_records_its_options() -> None:
    @task("email.send", queue="emails", max_attempts=5, timeout="30s")
    async def send(payload, ctx):
        return payload

    assert isinstance(send, Task)
    assert (send.name, send.queue, send.max_attempts, send.timeout.total_seconds()) == (
        "email.send",
        "emails",
        5,
        30.0,
    )
    assert send.is_async and send.takes_context


def test_collect_finds_tasks_and_refuses_two_with_one_name() -> None:
    one = types.ModuleType("one")
    one.a = task("a")(lambda p: p)
    one.not_a_task = lambda p: p
    assert set(collect_tasks([one])) == {"a"}
    two = types.ModuleType("two")
    two.other = task("a")(lambda p: None)
    with pytest.raises(ValueError):
        collect_tasks([one, two])


@pytest.mark.parametrize(("name", "queue"), [("has space", "q"), ("ok", "Bad Queue")])
def test_bad_names_fail_at_declaration(name: str, queue: str) -> None:
    with pytest.raises(ValueError):
        task(name, queue=queue)
