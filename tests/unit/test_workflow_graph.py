"""core.workflows: what a workflow's graph must be, refused naming the field."""

from __future__ import annotations

import pytest

from jobq.core.errors import InvalidArgument
from jobq.core.states import JobState
from jobq.core.workflows import NodeSpec, check_graph, workflow_state

S = JobState


def nodes(graph: dict[str, tuple[str, ...]]) -> list[NodeSpec]:
    return [NodeSpec(k, v) for k, v in graph.items()]


def test_the_order_puts_every_parent_before_its_children() -> None:
    graph = {"d": ("b", "c"), "b": ("a",), "c": ("a",), "a": (), "e": ()}
    order = check_graph(nodes(graph), 10)
    keys = list(graph)
    position = {keys[i]: n for n, i in enumerate(order)}
    assert sorted(order) == list(range(len(graph)))
    assert all(position[p] < position[k] for k, ps in graph.items() for p in ps)


@pytest.mark.parametrize(
    ("graph", "field", "words"),
    [
        ({}, "nodes", "at least one"),
        ({"a": (), "b": (), "c": ()}, "nodes", "over the limit of 2"),
        ({"a": ("zz",)}, "nodes[0].depends_on[0]", "not the key"),
        ({"a": ("a",)}, "nodes[0].depends_on[0]", "itself"),
        ({"a": (), "b": ("a", "a")}, "nodes[1].depends_on[1]", "twice"),
        ({"-a": ()}, "nodes[0].key", "not a key"),
        ({"a": ("c",), "b": ("a",), "c": ("b",), "d": ()}, "nodes", "cycle through a, b, c"),
    ],
)
def test_a_bad_graph_is_refused_naming_the_field(graph, field, words) -> None:
    limit = 2 if len(graph) == 3 and not any(graph.values()) else 10
    with pytest.raises(InvalidArgument) as raised:
        check_graph(nodes(graph), limit)
    assert raised.value.field == field
    assert words in raised.value.problem


def test_a_key_used_twice_is_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_graph([NodeSpec("a", ()), NodeSpec("a", ())], 10)
    assert raised.value.field == "nodes[1].key"


def test_a_workflow_runs_until_every_node_finished() -> None:
    assert workflow_state([S.SUCCEEDED, S.WAITING]) == "running"
    assert workflow_state([S.DEAD, S.WAITING]) == "running"
    assert workflow_state([S.SUCCEEDED, S.SUCCEEDED]) == "succeeded"
    assert workflow_state([S.SUCCEEDED, S.CANCELLED]) == "failed"
