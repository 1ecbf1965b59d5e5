"""What every jobq Kafka consumer process does around its loop, written once.

jq-result-processor and jq-metrics-aggregator differ only in the loop they run; both
validate settings the same way, expose /metrics and /readyz on a side port, run the loop in
a thread (confluent-kafka's poll blocks) until SIGINT/SIGTERM, and shut the tracer down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from jobq.config import KafkaSettings
from jobq.events.consumer import ConsumerLoop

S = TypeVar("S", bound=KafkaSettings)


async def serve_consumer(
    name: str,
    loop: ConsumerLoop,
    registry: CollectorRegistry,
    http: tuple[str, int, str],
    provider: TracerProvider | None,
    log: logging.Logger,
    **started: Any,
) -> None:
    """Serve `loop` with its HTTP side port (`http` is host, port and the variable that
    moves it) until SIGINT/SIGTERM; `started` goes into the start-up log line."""
    from jobq.observability.http import HttpSidePort, build_http_app

    host, port, setting = http
    side = HttpSidePort(build_http_app(registry, loop.health.readiness), host, port, setting)
    bound = await side.start()
    log.info("%s running", name, extra={"http_port": bound, **started})
    running = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        running.add_signal_handler(sig, loop.stop.set)
    try:
        await asyncio.to_thread(loop.run)
    finally:
        await side.stop()
        if provider is not None:
            provider.shutdown()


def consumer_main(
    name: str, settings_class: type[S], run: Callable[[S], Coroutine[Any, Any, None]]
) -> None:
    """The console-script entry point: settings, or exit 2 naming what is wrong; logging;
    then `run` until a signal stops it."""
    from jobq.config import ConfigError, load
    from jobq.observability.logging import configure_logging

    try:
        settings = load(settings_class)
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    if not settings.kafka_bootstrap_servers:
        print(f"{name}: JQ_KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format, name)
    asyncio.run(run(settings))
