"""jq-ctl workflows: submit (from a JSON file), get, watch, cancel (ADR 0016).

The file holds {"name": ..., "on_failure": "cancel"|"wait", "nodes": [{"key": "a", "type":
"echo", "payload": {...}, "depends_on": [...], "queue": ...}, ...]}."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from jobq.client import AsyncClient, Node, Workflow
from jobq.ctl import render

T = TypeVar("T")

workflows_app = typer.Typer(
    no_args_is_help=True, help="Workflows (DAGs of jobs): submit, get, watch, cancel."
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NODE_FIELDS = {"key", "type", "payload", "depends_on", "queue", "priority", "max_attempts"}


def _run(work: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
    from jobq.ctl.main import run  # main registers this group: imported when a command runs

    return run(work)


def _fail(message: str) -> typer.Exit:
    from jobq.ctl.main import fail

    return fail(message, 2)


def workflow_table(workflow: Workflow) -> None:
    render.out.print(
        f"workflow {workflow.id} {workflow.name!r}: {workflow.state} "
        f"(on failure: {workflow.on_failure}, tenant {workflow.tenant})"
    )
    table = Table("KEY", "STATE", "DEPENDS ON", "TYPE", "JOB ID")
    for node in workflow.nodes:
        table.add_row(
            node.key, node.job.state.value, ", ".join(node.depends_on), node.job.type, node.job.id
        )
    render.out.print(table)


def _nodes(spec: Any) -> list[Node]:
    if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), list):
        raise _fail('the file must hold an object with a "nodes" list')
    nodes = []
    for index, node in enumerate(spec["nodes"]):
        if not isinstance(node, dict) or not {"key", "type"} <= set(node):
            raise _fail(f'nodes[{index}]: an object with at least "key" and "type"')
        unknown = set(node) - NODE_FIELDS
        if unknown:
            raise _fail(f"nodes[{index}]: unknown fields {', '.join(sorted(unknown))}")
        nodes.append(Node(**{**node, "depends_on": tuple(node.get("depends_on", ()))}))
    return nodes


@workflows_app.command("submit")
def submit(
    file: Annotated[Path, typer.Argument(help="A JSON file describing the workflow.")],
    tenant: Annotated[str, typer.Option("--tenant", help="Whose (default: yours).")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Submit a workflow from a JSON file: its roots queue now, the rest wait."""
    try:
        spec = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"{file}: {exc}") from None
    nodes = _nodes(spec)
    name = str(spec.get("name", ""))
    on_failure = str(spec.get("on_failure", "cancel"))
    workflow = _run(
        lambda c: c.submit_workflow(nodes, name=name, on_failure=on_failure, tenant=tenant)
    )
    render.emit_json(workflow) if json_out else workflow_table(workflow)


@workflows_app.command("get")
def get(workflow_id: str, json_out: JsonFlag = False) -> None:
    """A workflow and the state of every node."""
    workflow = _run(lambda c: c.get_workflow(workflow_id))
    render.emit_json(workflow) if json_out else workflow_table(workflow)


@workflows_app.command("watch")
def watch(workflow_id: str, json_out: JsonFlag = False) -> None:
    """Print the workflow each time a node changes state, until every node has finished;
    exit 1 unless every node succeeded."""

    async def follow(client: AsyncClient) -> Workflow | None:
        last = None
        async for workflow in client.watch_workflow(workflow_id):
            last = workflow
            if json_out:
                render.emit_json(workflow)
            else:
                counts: dict[str, int] = {}
                for node in workflow.nodes:
                    counts[node.job.state.value] = counts.get(node.job.state.value, 0) + 1
                summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
                render.out.print(f"{workflow.state}: {summary}")
        return last

    final = _run(follow)
    if final is not None and final.state != "succeeded":
        raise typer.Exit(1)


@workflows_app.command("cancel")
def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in each job's events.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Cancel every unfinished node (a running one is told on its next heartbeat)."""
    workflow = _run(lambda c: c.cancel_workflow(workflow_id, reason))
    render.emit_json(workflow) if json_out else workflow_table(workflow)
