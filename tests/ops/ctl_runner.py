"""jq-ctl run in this process: the same click command the `jq-ctl` script runs, under click's
CliRunner, so a test runs dozens of commands in seconds (a jq-ctl process takes about a
second just to import grpc and typer).

The environment is the operator's shell as the runbooks assume it (docs/runbooks/README.md,
"Before you start"): JQ_SERVER_ADDRESS and JQ_TOKEN, nothing else of jobq's. A command
that asks first (`dlq discard <ids>` without --yes) is answered through a pseudo-terminal,
as a person at a terminal would answer: off a terminal jq-ctl refuses to ask.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator, Mapping
from typing import IO

from click.testing import CliRunner, Result

from jobq.ctl.main import build_command

COMMAND = build_command()


@contextlib.contextmanager
def _terminal(answer: str) -> Iterator[IO[bytes]]:
    """A terminal's input end, with `answer` typed into it."""
    primary, secondary = os.openpty()
    try:
        os.write(primary, answer.encode())
        with os.fdopen(secondary, "rb", buffering=0) as tty:
            yield tty
    finally:
        os.close(primary)


def run_ctl(
    command: str, env: Mapping[str, str] | None = None, answer: str | None = None
) -> Result:
    """Run `jq-ctl ...` (the command as a page writes it) and return what it printed."""
    argv = shlex.split(command)
    assert argv[0] == "jq-ctl", command
    # Every JQ_ variable of this process unset, then the shell's own.
    shell = {k: None for k in os.environ if k.startswith("JQ_")} | dict(env or {})
    runner = CliRunner()
    if answer is None:
        return runner.invoke(COMMAND, argv[1:], env=shell, prog_name="jq-ctl")
    with _terminal(answer) as tty:
        return runner.invoke(COMMAND, argv[1:], env=shell, prog_name="jq-ctl", input=tty)
