"""jq-ctl events: read job events from Kafka and create jobq's topics.

Connects with the JQ_KAFKA_* settings (bootstrap servers, TLS, SASL/SCRAM, MSK IAM) that
jq-server uses.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Annotated

import typer
from google.protobuf import json_format

from jobq.config import ConfigError, KafkaSettings, load
from jobq.core.errors import JobqError
from jobq.ctl import render
from jobq.events.consumer import ReceivedEvent
from jobq.events.topics import TopicNames
from jobq.v1 import job_pb2

events_app = typer.Typer(no_args_is_help=True, help="Job events on Kafka: tail, create-topics.")


def _fail(message: str, code: int = 1) -> typer.Exit:
    print(f"jq-ctl: error: {' '.join(message.split())}", file=sys.stderr)
    return typer.Exit(code)


def _settings() -> KafkaSettings:
    try:
        settings = load(KafkaSettings)
    except ConfigError as exc:
        raise _fail(f"configuration error: {exc}", 2) from None
    if not settings.kafka_bootstrap_servers:
        raise _fail("JQ_KAFKA_BOOTSTRAP_SERVERS is not set", 2)
    return settings


def _state(value: int) -> str:
    name = job_pb2.JobState.Name(value)  # type: ignore[arg-type]
    return "-" if value == 0 else name.removeprefix("JOB_STATE_").lower()


def _line(received: ReceivedEvent) -> str:
    e = received.event
    return (
        f"{e.at.ToDatetime().isoformat(timespec='milliseconds')}Z  {received.topic:<20} "
        f"{e.job_id}  {e.kind:<16} {_state(e.from_state)} -> {_state(e.to_state)}  "
        f"attempt={e.attempt} seq={e.sequence} event={e.event_id}"
    )


@events_app.command("tail")
def tail(
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="Topic to read (repeat; default: every job topic)."),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest retained event.")
    ] = False,
    max_events: Annotated[int, typer.Option("--max", help="Stop after N events (0: never).")] = 0,
    idle: Annotated[
        float, typer.Option("--idle", help="Stop after this many seconds without one (0: never).")
    ] = 0.0,
    group: Annotated[
        str, typer.Option("--group", help="Consumer group (default: a new one, no commits).")
    ] = "",
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print job events as they arrive, decoded, without duplicates."""
    from confluent_kafka import Consumer

    from jobq.events.connection import kafka_config
    from jobq.events.consumer import EventConsumer

    settings = _settings()
    names = TopicNames(settings.kafka_topic_prefix)
    topics = (
        [names.name(t) for t in topic]
        if topic
        else [s.name for s in names.specs() if not s.name.endswith("worker.heartbeat")]
    )
    try:
        config = kafka_config(settings)
    except JobqError as exc:
        raise _fail(str(exc), 2) from None
    consumer = EventConsumer(
        Consumer(
            {
                **config,
                "group.id": group or f"jq-ctl-tail-{uuid.uuid4()}",
                "enable.auto.commit": bool(group),
                "auto.offset.reset": "earliest" if from_beginning else "latest",
            }
        )
    )
    consumer.subscribe(topics)
    seen = 0
    last = time.monotonic()
    try:
        while not max_events or seen < max_events:
            received = consumer.poll(0.5)
            if received is None:
                if idle and time.monotonic() - last > idle:
                    break
                continue
            seen += 1
            last = time.monotonic()
            if json_out:
                body = json_format.MessageToDict(received.event, preserving_proto_field_name=True)
                print(json.dumps({"topic": received.topic, **body}), flush=True)
            else:
                render.out.print(_line(received))
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


@events_app.command("create-topics")
def create_topics() -> None:
    """Create jobq's topics (missing ones only) with JQ_KAFKA_TOPIC_PARTITIONS and
    JQ_KAFKA_REPLICATION_FACTOR; jq-server does the same at start."""
    from jobq.events.admin import ensure_topics
    from jobq.events.connection import kafka_config

    settings = _settings()
    try:
        created = ensure_topics(
            kafka_config(settings),
            TopicNames(settings.kafka_topic_prefix).specs(),
            settings.kafka_topic_partitions,
            settings.kafka_replication_factor,
        )
    except JobqError as exc:
        raise _fail(str(exc), 2) from None
    except Exception as exc:
        raise _fail(f"cannot create topics: {exc}", 5) from None
    render.out.print(
        f"created {len(created)} topics" + (f": {', '.join(created)}" if created else "")
    )
