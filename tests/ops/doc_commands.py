"""The shell commands the docs show, found once for every test that checks or runs them.

A command is `tool ...` in a code block or inline code, from the tool's name to where the
shell would start another command or a comment starts; a backslash-continued line is one
command. docs/deploy.md and the runbooks are the pages an operator copies commands from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = sorted((ROOT / "docs" / "runbooks").glob("*.md"))
RUNBOOKS_README = ROOT / "docs" / "runbooks" / "README.md"
DEPLOY = ROOT / "docs" / "deploy.md"
PAGES = [DEPLOY, *RUNBOOKS]

# A command ends where the shell would start another, or a comment starts.
_END = re.compile(r"\s(?:#|\||&&|;|>|\))|`")


def shown_commands(tool: str, pages: Iterable[Path] = PAGES) -> list[tuple[str, str]]:
    """(page name, command) for every `tool ...` a page shows, whitespace collapsed."""
    found: set[tuple[str, str]] = set()
    for page in pages:
        text = page.read_text().replace("\\\n", " ")
        for match in re.finditer(rf"(?<![\w-]){re.escape(tool)} (?=[a-z-])[^\n`]*", text):
            command = _END.split(match.group(0), maxsplit=1)[0].strip()
            found.add((page.name, re.sub(r"\s+", " ", command)))
    return sorted(found)
