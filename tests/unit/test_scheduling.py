import random

from jobq.core.scheduling import weighted_order


def test_weighted_order_gives_each_queue_its_share_of_first_place() -> None:
    rng = random.Random(1)
    firsts = [weighted_order([("a", 1), ("b", 3)], rng)[0] for _ in range(4000)]
    assert 0.72 < firsts.count("b") / len(firsts) < 0.78


def test_weighted_order_keeps_every_item() -> None:
    order = weighted_order([("a", 1), ("b", 1000), ("c", 5)], random.Random(3))
    assert sorted(order) == ["a", "b", "c"]
