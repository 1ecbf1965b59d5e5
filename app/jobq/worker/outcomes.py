"""What a worker may send about a finished attempt: checked here, before it leaves.

A task can produce anything. An outcome the server cannot store must not reach it and
stall the reporting of every other outcome, so the worker sends only text PostgreSQL and
protobuf can carry, and only results the server can parse.
"""

from __future__ import annotations

import json
from typing import Any

MAX_ERROR_CHARS = 4000
MAX_MESSAGE_CHARS = 1000  # ReportProgress's bound on the server
# The server's parser gives up near 1,000 levels; no real result comes near this.
MAX_RESULT_DEPTH = 100
# JQ_MAX_PAYLOAD_BYTES's default; a server set lower refuses the result itself
# (INVALID_ARGUMENT naming it) and the worker fails that attempt alone.
MAX_RESULT_BYTES = 1024 * 1024

TRUNCATED = "... (truncated)"


class UnsendableResult(Exception):
    """A task's result that the server could not store; the attempt fails with this."""


def clean_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` safe to send and to store: NUL escaped, lone surrogates escaped, bounded."""
    # PostgreSQL text cannot hold NUL; protobuf cannot encode a lone surrogate.
    text = text.replace("\x00", "\\x00")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = text[: limit - len(TRUNCATED)] + TRUNCATED
    return text


def result_json(result: Any) -> str:
    """The task's result as JSON text the server accepts, or UnsendableResult saying why."""
    try:
        text = json.dumps(result, allow_nan=False)
    except RecursionError:
        raise UnsendableResult(
            f"the task's result is nested deeper than {MAX_RESULT_DEPTH} levels"
        ) from None
    except (TypeError, ValueError) as exc:
        raise UnsendableResult(f"the task's result is not JSON-serialisable: {exc}") from None
    size = len(text)  # ASCII: json.dumps escapes everything else
    if size > MAX_RESULT_BYTES:
        raise UnsendableResult(
            f"the task's result is {size} bytes of JSON, over the limit of {MAX_RESULT_BYTES}"
        )
    brackets = text.count("[") + text.count("{")  # cheap bound first: most results are flat
    if brackets > MAX_RESULT_DEPTH and json_depth(text) > MAX_RESULT_DEPTH:
        raise UnsendableResult(f"the task's result is nested deeper than {MAX_RESULT_DEPTH} levels")
    return text


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON `text` (0 for a scalar)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
