"""The result processor's output file as its dedupe log: what a restart recovers from it."""

from __future__ import annotations

import json
from pathlib import Path

from jobq.events.result_processor import open_output


def line(event_id: str) -> str:
    return json.dumps({"job_id": "j", "outcome": "succeeded", "event_id": event_id}) + "\n"


def test_given_lines_and_a_torn_last_line_then_the_ids_come_back_and_the_tear_is_cut(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out" / "results.jsonl"
    path.parent.mkdir()
    path.write_text(line("e1") + line("e2") + line("e3")[:20])  # killed mid-write

    out, ids = open_output(path)
    out.write(line("e4"))
    out.close()

    assert ids == ["e1", "e2"]
    assert [json.loads(x)["event_id"] for x in path.read_text().splitlines()] == ["e1", "e2", "e4"]


def test_only_the_last_lines_are_remembered_from_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("".join(line(f"e{i}") for i in range(5000)))
    out, ids = open_output(path, remember=3)
    out.close()
    assert ids == ["e4997", "e4998", "e4999"]


def test_a_new_file_is_created_empty(tmp_path: Path) -> None:
    out, ids = open_output(tmp_path / "new" / "results.jsonl")
    out.close()
    assert ids == [] and (tmp_path / "new" / "results.jsonl").read_text() == ""
