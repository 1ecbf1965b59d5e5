"""The lifecycle table: what may happen to a job, and what may not."""

import pytest

from jobq.core.errors import IllegalTransition
from jobq.core.states import TERMINAL_STATES, TRANSITIONS, EventKind, JobState, check_transition

S, E = JobState, EventKind


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        (None, S.QUEUED, E.SUBMITTED),
        (S.SCHEDULED, S.QUEUED, E.PROMOTED),
        (S.QUEUED, S.RUNNING, E.STARTED),
        (S.RUNNING, S.SUCCEEDED, E.SUCCEEDED),
        (S.RUNNING, S.SCHEDULED, E.LEASE_EXPIRED),
        (S.RUNNING, S.DEAD, E.DEAD_LETTERED),
        (S.DEAD, S.QUEUED, E.REPLAYED),
        (S.QUEUED, S.CANCELLED, E.CANCELLED),
    ],
)
def test_legal_transitions_pass(source, target, kind) -> None:
    check_transition(source, target, kind)


@pytest.mark.parametrize(
    ("source", "target", "kind"),
    [
        (S.SUCCEEDED, S.QUEUED, E.REPLAYED),  # only dead jobs are replayed
        (S.QUEUED, S.SUCCEEDED, E.SUCCEEDED),  # a job must run before it succeeds
        (S.CANCELLED, S.RUNNING, E.STARTED),
        (S.RUNNING, S.SUCCEEDED, E.CANCELLED),  # right edge, wrong reason
        (S.EXPIRED, S.QUEUED, E.PROMOTED),
    ],
)
def test_illegal_transitions_are_refused(source, target, kind) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(source, target, kind)


def test_no_edge_leaves_a_terminal_state_except_replay_and_discard_of_dead() -> None:
    leaving = {(a, b) for (a, b) in TRANSITIONS if a in TERMINAL_STATES}
    assert leaving == {(S.DEAD, S.QUEUED), (S.DEAD, None)}
