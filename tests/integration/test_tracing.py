"""OpenTelemetry traces: an RPC joins its caller's trace, and a job's execution joins its
submitter's trace through the context stored with the job."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from opentelemetry import trace

from jobq.client import AsyncClient
from jobq.core.errors import NotFound
from jobq.core.states import JobState
from jobq.worker.task import task
from tests.auth_keys import OWNER_KEY
from tests.integration.inprocess import Spans, running_server, running_worker

SUBMIT = "jobq.v1.JobService/Submit"


@task("traced.echo", queue="traced")
async def traced_echo(payload):
    return payload


def trace_id_hex(span) -> str:
    return trace.format_trace_id(span.context.trace_id)


async def test_given_a_parent_span_when_submitting_then_the_rpc_span_and_job_join_its_trace(
    tmp_path: Path,
) -> None:
    server_spans, app_spans = Spans("jq-server"), Spans("app")
    async with (
        running_server(tmp_path, server_spans) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        with app_spans.tracer.start_as_current_span("checkout") as parent:
            job = await client.submit("traced.echo", {"n": 1}, queue="traced")
        stored = await client.get(job.id)

    (rpc,) = server_spans.named(SUBMIT)
    assert rpc.kind is trace.SpanKind.SERVER
    assert rpc.parent is not None and rpc.parent.is_remote
    assert rpc.parent.span_id == parent.get_span_context().span_id
    assert rpc.context.trace_id == parent.get_span_context().trace_id
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.system"] == "grpc"
    assert rpc.attributes["rpc.service"] == "jobq.v1.JobService"
    assert rpc.attributes["rpc.method"] == "Submit"
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]

    # The store call made while serving it is its child.
    (store_call,) = server_spans.named("jobs.submit")
    assert store_call.parent is not None and store_call.parent.span_id == rpc.context.span_id
    assert store_call.attributes is not None
    assert store_call.attributes["db.system.name"] == "sqlite"

    # No trace context of its own from the client: the job carries the Submit call's.
    traceparent = stored.trace_context["traceparent"]
    assert traceparent.split("-")[1] == trace_id_hex(rpc)
    assert traceparent.split("-")[2] == trace.format_span_id(rpc.context.span_id)


async def test_given_a_missing_job_when_getting_it_then_the_span_has_the_status_code(
    tmp_path: Path,
) -> None:
    server_spans = Spans("jq-server")
    async with (
        running_server(tmp_path, server_spans) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        with pytest.raises(NotFound):
            await client.get("no-such-job")

    (rpc,) = server_spans.named("jobq.v1.JobService/GetJob")
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert rpc.status.status_code is trace.StatusCode.UNSET  # the caller's error, not ours
    assert rpc.parent is None  # no traceparent came in: a trace of its own


async def test_given_a_job_submitted_in_a_trace_when_a_worker_runs_it_then_it_joins_that_trace(
    tmp_path: Path,
) -> None:
    server_spans, app_spans, worker_spans = Spans("jq-server"), Spans("app"), Spans("jq-worker")
    async with (
        running_server(tmp_path, server_spans) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        with app_spans.tracer.start_as_current_span("checkout") as parent:
            job = await client.submit("traced.echo", {"n": 2}, queue="traced")
        async with running_worker(server, {"traced.echo": traced_echo}, tracing=worker_spans):
            finished = await client.wait(job.id)
    assert finished.state is JobState.SUCCEEDED

    (run,) = worker_spans.named("run traced.echo")
    (rpc,) = server_spans.named(SUBMIT)
    assert run.context.trace_id == parent.get_span_context().trace_id
    assert run.parent is not None and run.parent.span_id == rpc.context.span_id
    assert run.attributes is not None
    assert run.attributes["jobq.job.id"] == job.id
    assert run.attributes["jobq.outcome"] == "completed"


@task("traced.own_span", queue="traced")
async def traced_own_span(payload):
    # A task's own span, made with the application's tracer (here the test's).
    with OWN_SPANS.tracer.start_as_current_span("inside the task"):
        return payload


OWN_SPANS = Spans("task")


async def test_given_a_sample_ratio_of_zero_then_only_jobs_of_a_sampled_trace_get_spans(
    tmp_path: Path,
) -> None:
    server_spans = Spans("jq-server", sample_ratio=0.0)
    worker_spans = Spans("jq-worker", sample_ratio=0.0)
    app_spans = Spans("app")  # the submitter samples everything
    async with (
        running_server(tmp_path, server_spans) as server,
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        untraced = await client.submit("traced.echo", {"n": 3}, queue="traced")
        with app_spans.tracer.start_as_current_span("checkout") as parent:
            traced = await client.submit("traced.echo", {"n": 4}, queue="traced")
        async with running_worker(server, {"traced.echo": traced_echo}, tracing=worker_spans):
            for job in (untraced, traced):
                assert (await client.wait(job.id)).state is JobState.SUCCEEDED

    # The submitter's sampled trace is followed end to end...
    runs = worker_spans.named("run traced.echo")
    assert [run.attributes["jobq.job.id"] for run in runs if run.attributes] == [traced.id]
    assert runs[0].context.trace_id == parent.get_span_context().trace_id
    (rpc,) = server_spans.named(SUBMIT)
    assert rpc.context.trace_id == parent.get_span_context().trace_id
    # ...and a trace that would start here is dropped at the ratio (0: always).
    assert all(
        s.context.trace_id == parent.get_span_context().trace_id for s in server_spans.finished()
    )


async def test_given_no_trace_export_then_a_tasks_own_span_still_joins_the_submitters_trace(
    tmp_path: Path,
) -> None:
    app_spans = Spans("app")
    async with (
        running_server(tmp_path) as server,  # neither server nor worker exports spans
        AsyncClient(f"127.0.0.1:{server.grpc_port}", token=OWNER_KEY) as client,
    ):
        with app_spans.tracer.start_as_current_span("checkout") as parent:
            job = await client.submit("traced.own_span", {"n": 5}, queue="traced")
        async with running_worker(server, {"traced.own_span": traced_own_span}):
            assert (await client.wait(job.id)).state is JobState.SUCCEEDED

    (inside,) = OWN_SPANS.named("inside the task")
    assert inside.context.trace_id == parent.get_span_context().trace_id
    assert inside.parent is not None
    assert inside.parent.span_id == parent.get_span_context().span_id
