"""Job, event and worker ids: canonical UUIDv7 strings that sort in the order drawn."""

from __future__ import annotations

import itertools
import time
import uuid

from jobq.core.bounds import is_job_id
from jobq.ids import new_id


def test_an_id_is_a_canonical_uuid7_stamped_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert str(parsed) == value  # lower case, hyphenated: what the ::uuid cast gives back
    assert is_job_id(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_ids_drawn_later_sort_after_earlier_ones_even_within_a_millisecond() -> None:
    # Workflows draw parents' ids first and rely on id order putting them first.
    ids = [new_id() for _ in range(20_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
