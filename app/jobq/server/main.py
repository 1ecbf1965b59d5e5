"""jq-server: `jq-server` (or `jq-server serve`) runs it; `jq-server migrate` applies migrations."""

from __future__ import annotations

import asyncio
import sys

import typer

from jobq.config import ConfigError, ServerSettings, load
from jobq.core.errors import JobqError
from jobq.observability.logging import configure_logging

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
        asyncio.run(run(settings))
    except (JobqError, OSError) as exc:
        typer.echo(f"jq-server: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def migrate() -> None:
    """Apply every pending schema migration and exit."""
    from jobq.server.app import build_store

    settings = _settings()
    store = build_store(settings)
    asyncio.run(store.migrate())
    typer.echo("migrations applied")


def main() -> None:
    sys.exit(cli())
