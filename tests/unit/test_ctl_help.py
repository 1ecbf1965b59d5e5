"""jq-ctl --help names what each value is (QUEUE, DURATION), never a Python type."""

from __future__ import annotations

import contextlib
import io

import pytest

from jobq.ctl.main import build_command


def _paths(command: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        found += _paths(sub, (*prefix, name))
    return found


def test_every_help_page_shows_placeholders_not_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # one line per option, as on a wide terminal
    command = build_command()
    paths = _paths(command)
    assert ("dlq", "discard") in paths and ("submit",) in paths
    pages = {}
    for path in paths:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            command.main(args=[*path, "--help"], prog_name="jq-ctl")
        pages[path] = out.getvalue()
        assert "Usage" in pages[path], path
        for python_type in ("<str>", "<int>", "<bool>", "<float>", "<list"):
            assert python_type not in pages[path], (path, pages[path])
    assert "DURATION" in pages[("submit",)] and "QUEUE" in pages[("submit",)]
