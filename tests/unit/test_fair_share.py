"""Fair dispatch across tenants and queues, deterministic (jobq.core.scheduling.FairShare)."""

from __future__ import annotations

import pytest

from jobq.core.scheduling import FairShare, Flow


def lease(fair: FairShare, queues: dict[Flow, int], backlog: dict[Flow, int], batch: int) -> None:
    """One lease call as the store makes it: fill `batch` from the flows in fair order."""
    flows = list(queues)
    started: dict[Flow, int] = {}
    empty: set[Flow] = set()
    room = batch
    for flow in fair.order(flows):
        if room == 0:
            break
        take = min(room, backlog[flow])
        if take == 0:
            empty.add(flow)
            continue
        backlog[flow] -= take
        started[flow] = take
        room -= take
    fair.charge(fair.weights([(f, queues[f]) for f in flows]), started, empty)


@pytest.mark.parametrize("batch", [1, 10])
def test_tenants_weighted_3_to_1_start_jobs_3_to_1_over_10000(batch: int) -> None:
    # Given tenants weighted 3:1, each with a backlog far larger than what will run
    fair = FairShare({"big": 3, "small": 1})
    queues = {("big", "work"): 1, ("small", "work"): 1}
    backlog = dict.fromkeys(queues, 1_000_000)
    # When 10,000 jobs are leased
    for _ in range(10_000 // batch):
        lease(fair, queues, backlog, batch)
    big = 1_000_000 - backlog[("big", "work")]
    small = 1_000_000 - backlog[("small", "work")]
    # Then they started 3:1
    assert big + small == 10_000
    assert big / small == pytest.approx(3, abs=0.3)


def test_a_tenant_with_many_queues_gets_its_weight_not_its_queue_count() -> None:
    fair = FairShare()
    queues = {("many", f"q{i}"): 1 for i in range(5)} | {("one", "q"): 1}
    backlog = dict.fromkeys(queues, 100_000)
    for _ in range(1000):
        lease(fair, queues, backlog, 1)
    many = sum(100_000 - backlog[f] for f in queues if f[0] == "many")
    assert many == 500  # equal tenant weights: half each, however many queues


def test_queue_weights_share_a_tenants_part() -> None:
    fair = FairShare()
    queues = {("t", "heavy"): 3, ("t", "light"): 1}
    backlog = dict.fromkeys(queues, 100_000)
    for _ in range(4000):
        lease(fair, queues, backlog, 1)
    heavy, light = (100_000 - backlog[f] for f in queues)
    assert heavy / light == pytest.approx(3, abs=0.3)


def test_an_idle_tenant_banks_no_credit_and_a_huge_backlog_starves_no_one() -> None:
    # Given a tenant with a huge backlog leasing alone for 5,000 jobs
    fair = FairShare()
    queues = {("huge", "q"): 1, ("quiet", "q"): 1}
    backlog = {("huge", "q"): 1_000_000, ("quiet", "q"): 0}
    for _ in range(5000):
        lease(fair, queues, backlog, 1)
    # When the quiet tenant submits 100 jobs
    backlog[("quiet", "q")] = 100
    huge_before = backlog[("huge", "q")]
    for _ in range(100):
        lease(fair, queues, backlog, 1)
    # Then the two alternate from then on: the quiet tenant is not starved by the backlog,
    # and does not take every lease to "catch up" on the time it was idle
    quiet_started = 100 - backlog[("quiet", "q")]
    assert quiet_started == 50
    assert huge_before - backlog[("huge", "q")] == 50
