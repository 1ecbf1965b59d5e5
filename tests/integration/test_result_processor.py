"""jq-result-processor against a real broker: events produced by the outbox relay, one line
per finished job even with a duplicate record on the topic, lag down to 0 on /metrics; a
job's trace context carried by its events into the processor's span."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import uuid
from pathlib import Path

import aiohttp
from confluent_kafka import Producer
from opentelemetry import trace
from prometheus_client import CollectorRegistry, generate_latest

from jobq.client import AsyncClient
from jobq.config import ResultProcessorSettings
from jobq.core.clock import FixedClock
from jobq.core.model import Outcome, OutcomeKind, QueueConfig
from jobq.core.states import EventKind
from jobq.events.codec import EVENT_ID_HEADER, encode
from jobq.events.relay import build_relay
from jobq.events.result_processor import ResultMetrics, ResultProcessor, build_consumer
from jobq.events.topics import TopicNames
from jobq.observability.http import HttpSidePort, build_http_app
from jobq.store.base import Store
from jobq.worker.task import task
from tests.auth_keys import OWNER_KEY
from tests.contract.helpers import lease_of, new_job, register
from tests.harness.kafka import KafkaBroker
from tests.integration.inprocess import Spans, running_server, running_worker
from tests.integration.test_events_kafka import T0, drain, kafka_settings
from tests.integration.test_metrics_scrape import assert_exports_contract, check_with_promtool
from tests.ops.metric_contract import RESULT_PROCESSOR_JOB

SUCCEEDED, DEAD = 40, 10


async def finish_jobs(store: Store, clock: FixedClock) -> dict[str, str]:
    """SUCCEEDED jobs succeed, DEAD are dead-lettered; returns job id -> correlation id."""
    await store.queues.create(QueueConfig(name="default", max_attempts=1), clock.now())
    worker = await register(store, clock)
    jobs = [new_job(clock, correlation_id=f"corr-{i}") for i in range(SUCCEEDED + DEAD)]
    await store.jobs.submit(jobs, clock.now())
    leased = await store.jobs.lease(worker, ["default"], len(jobs), clock.now())
    assert len(leased) == len(jobs)
    outcomes = [
        Outcome(lease_of(job), OutcomeKind.COMPLETED, result='"ok"')
        if i < SUCCEEDED
        else Outcome(lease_of(job), OutcomeKind.FAILED, error="bad", retryable=False)
        for i, job in enumerate(leased)
    ]
    await store.jobs.report(worker, outcomes, clock.now())
    return {j.id: j.correlation_id for j in jobs}


async def produce_duplicates(
    store: Store, broker: KafkaBroker, names: TopicNames, job_ids: list[str]
) -> None:
    """Send one succeeded and one dead-lettered event again, as a relay crash would."""
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for job_id in (job_ids[0], job_ids[-1]):
        (finished,) = [
            e
            for e in await store.jobs.events(job_id)
            if e.kind in (EventKind.SUCCEEDED, EventKind.DEAD_LETTERED)
        ]
        producer.produce(
            names.for_kind(finished.kind),
            key=finished.job_id.encode(),
            value=encode(finished),
            headers=[(EVENT_ID_HEADER, finished.id.encode())],
        )
    assert producer.flush(30) == 0


async def scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


def lag_samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("jq_kafka_consumer_lag{")
    }


async def test_given_finished_jobs_and_a_duplicate_event_then_each_job_is_written_once_and_lag_is_0(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    from tests.contract.conftest import sqlite_store

    prefix = f"t{uuid.uuid4().hex[:8]}."
    names = TopicNames(prefix)
    store = await sqlite_store(None, tmp_path)  # type: ignore[arg-type]
    await store.migrate()
    await store.open()
    try:
        # Given: 40 succeeded and 10 dead-lettered jobs published by the relay, and a duplicate
        # of one of each on the topics.
        clock = FixedClock(T0)
        correlation = await finish_jobs(store, clock)
        relay = build_relay(kafka_settings(kafka_broker, prefix), store, clock, CollectorRegistry())
        assert relay is not None
        await drain(relay, store)
        await relay.stop()
        await produce_duplicates(store, kafka_broker, names, list(correlation))
    finally:
        await store.close()

    settings = ResultProcessorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        kafka_topic_prefix=prefix,
        result_processor_group=f"jobq-result-processor-{prefix}",
    )

    def start() -> tuple[ResultProcessor, ResultMetrics, io.StringIO, threading.Thread]:
        metrics = ResultMetrics(settings.result_processor_group, CollectorRegistry())
        out = io.StringIO()
        processor = ResultProcessor(build_consumer(settings), names, metrics, out, lag_interval=0.5)
        thread = threading.Thread(target=processor.run, daemon=True)
        thread.start()
        return processor, metrics, out, thread

    # When: the processor runs until every partition's lag is 0.
    processor, metrics, out, thread = start()
    side_port = HttpSidePort(build_http_app(metrics.registry, None), "127.0.0.1", 0)
    port = await side_port.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            text = await scrape(port)
            lag = lag_samples(text)
            lines = out.getvalue().splitlines()
            if len(lines) >= SUCCEEDED + DEAD and lag and not any(lag.values()):
                break
            assert time.monotonic() < deadline, f"lines={len(lines)} lag={lag}"
            await asyncio.sleep(0.2)
    finally:
        processor.stop.set()
        await asyncio.to_thread(thread.join, 30)
        await side_port.stop()

    # Then: one line per job, with its outcome and correlation id; both duplicates dropped.
    written = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted(w["job_id"] for w in written) == sorted(correlation)
    assert all(w["correlation_id"] == correlation[w["job_id"]] for w in written)
    outcomes = [w["outcome"] for w in written]
    assert (outcomes.count("succeeded"), outcomes.count("dead_lettered")) == (SUCCEEDED, DEAD)
    # Every partition of both topics (3 each) is assigned to this one member and read to the end.
    assert len(lag) == 6 and all(
        f'group="{settings.result_processor_group}"' in series for series in lag
    )
    check_with_promtool(text)
    assert_exports_contract(text, RESULT_PROCESSOR_JOB)

    # And: offsets were committed, so a restart of the group writes nothing again.
    # (Assigned every partition, each read to its end, before it is stopped.)
    again, metrics2, out2, thread2 = start()
    try:
        deadline = time.monotonic() + 60
        while len(lag := lag_samples(generate_latest(metrics2.registry).decode())) < 6:
            assert time.monotonic() < deadline, f"never assigned: {lag}"
            await asyncio.sleep(0.2)
        assert not any(lag.values())
    finally:
        again.stop.set()
        await asyncio.to_thread(thread2.join, 30)
    assert out2.getvalue() == ""


@task("traced.finish", queue="traced-events")
async def traced_finish(payload):
    return payload


async def test_given_a_job_submitted_in_a_span_then_its_event_and_processor_span_are_in_its_trace(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    app_spans, processor_spans = Spans("app"), Spans("jq-result-processor")
    settings = ResultProcessorSettings(
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        kafka_topic_prefix=prefix,
        result_processor_group=f"jobq-result-processor-{prefix}",
    )
    metrics = ResultMetrics(settings.result_processor_group, CollectorRegistry())
    out = io.StringIO()
    processor = ResultProcessor(
        build_consumer(settings),
        TopicNames(prefix),
        metrics,
        out,
        lag_interval=0.5,
        tracer=processor_spans.tracer,
        group=settings.result_processor_group,
    )
    thread = threading.Thread(target=processor.run, daemon=True)
    # Given: a server publishing to Kafka and a worker; a job submitted inside a span.
    async with (
        running_server(
            tmp_path,
            kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
            kafka_topic_prefix=prefix,
            kafka_topic_partitions=3,
        ) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        with app_spans.tracer.start_as_current_span("checkout") as parent:
            job = await client.submit("traced.finish", {"n": 1}, queue="traced-events")
        async with running_worker(server, {"traced.finish": traced_finish}):
            # When: the job succeeds and the result processor reads its job.completed event.
            thread.start()
            try:
                deadline = time.monotonic() + 60
                while not out.getvalue():
                    assert time.monotonic() < deadline, "no result line"
                    await asyncio.sleep(0.2)
            finally:
                processor.stop.set()
                await asyncio.to_thread(thread.join, 30)

    # Then: the event named the job's trace, and the processor's span for it is in that trace.
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert (line["job_id"], line["outcome"]) == (job.id, "succeeded")
    (span,) = processor_spans.named("jq-result-processor succeeded")
    trace_id = parent.get_span_context().trace_id
    assert span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.is_remote
    assert span.kind is trace.SpanKind.CONSUMER
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == line["event_id"]
    assert span.attributes["messaging.destination.name"] == f"{prefix}job.completed"
