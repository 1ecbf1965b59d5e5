"""jq-server: `jq-server` (or `jq-server serve`) runs it; `jq-server migrate` applies migrations."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import NoReturn

import typer

from jobq import eventloop
from jobq.config import ConfigError, ServerSettings, load
from jobq.core.errors import JobqError
from jobq.observability.logging import configure_logging

log = logging.getLogger("jobq.server")

cli = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__)


def _settings() -> ServerSettings:
    try:
        return load(ServerSettings)
    except ConfigError as exc:
        typer.echo(f"jq-server: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    """Run the server (the default command)."""
    if ctx.invoked_subcommand is None:
        serve()


@cli.command()
def serve() -> None:
    """Run the gRPC server, the HTTP side port and the scheduler until SIGTERM."""
    from jobq.server.app import serve as run

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, "jq-server")
    try:
        eventloop.run(run(settings), settings.event_loop)
    except Exception as exc:
        _fail(exc)


@cli.command()
def migrate() -> None:
    """Apply every pending schema migration and exit; with JQ_DATABASE_APP_USER, also give
    that login its JQ_DATABASE_APP_PASSWORD and the application role's grants."""
    from jobq.server.app import build_store

    settings = _settings()
    try:
        store = build_store(settings)
        asyncio.run(store.migrate())
        if settings.database_app_user:
            from jobq.store.postgres import PostgresStore

            if not isinstance(store, PostgresStore):
                raise JobqError("JQ_DATABASE_APP_USER needs a postgresql:// JQ_DATABASE_URL")
            asyncio.run(
                store.grant_app_login(settings.database_app_user, settings.database_app_password)
            )
    except Exception as exc:
        _fail(exc)
    typer.echo("migrations applied")
    if settings.database_app_user:
        typer.echo(f"login {settings.database_app_user} may use jobq's tables")


def _fail(exc: Exception) -> NoReturn:
    """The cause in one line on stderr and exit 1; the traceback only at JQ_LOG_LEVEL=DEBUG.

    Errors of ours (JobqError, OSError) already say what to change; anything else is named
    by its type, since its message alone may not say where it came from.
    """
    log.debug("jq-server failed", exc_info=exc)
    ours = isinstance(exc, JobqError | OSError)
    message = str(exc) if ours else f"{type(exc).__name__}: {exc}"
    typer.echo(f"jq-server: {_first_line(message)}", err=True)
    raise typer.Exit(1) from None


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed"


def main() -> None:
    sys.exit(cli())
