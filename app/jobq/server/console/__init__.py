"""The web console, served by jq-server on its HTTP port (ADR 0013)."""

from jobq.server.console.web import add_console

__all__ = ["add_console"]
