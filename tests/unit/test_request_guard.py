"""server.guard: every field of every jobq request has a bound, and the walk applies it."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from jobq.core import bounds
from jobq.core.errors import InvalidArgument
from jobq.server.guard import Undecodable, check_request, decoder
from jobq.v1 import (
    admin_service_pb2,
    job_pb2,
    job_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)

LIMITS = bounds.Limits(max_batch=10, max_workflow_nodes=5)
SERVICES = [
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
    workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
]


def _fields(message: Descriptor, seen: set[str]) -> list[FieldDescriptor]:
    if message.full_name in seen:
        return []
    seen.add(message.full_name)
    out = []
    for fd in message.fields:
        out.append(fd)
        if fd.message_type is not None and not fd.message_type.GetOptions().map_entry:
            out.extend(_fields(fd.message_type, seen))
    return out


REQUEST_FIELDS = [
    fd
    for service in SERVICES
    for method in service.methods
    for fd in _fields(method.input_type, set())
]


@pytest.mark.parametrize("fd", REQUEST_FIELDS, ids=lambda fd: fd.full_name)
def test_every_request_field_has_a_documented_bound(fd: FieldDescriptor) -> None:
    """A field added to a request without a bound would fail every call that sets it."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        assert fd.name == "trace_context"
        return
    if fd.is_repeated:
        assert fd.name in bounds.ITEMS_MAX
    if fd.type == FieldDescriptor.TYPE_STRING:
        assert fd.name in bounds.TEXT_MAX


CASES = [
    (job_service_pb2.GetJobRequest(id="a\x00"), "id"),
    (job_service_pb2.CancelJobRequest(id="x", reason="r" * 1001), "reason"),
    (
        job_service_pb2.SubmitRequest(job=job_pb2.Job(correlation_id="c" * 30_000)),
        "job.correlation_id",
    ),
    (
        job_service_pb2.SubmitBatchRequest(jobs=[job_pb2.Job(), job_pb2.Job(tenant="\x00")]),
        "jobs[1].tenant",
    ),
    (job_service_pb2.SubmitBatchRequest(jobs=[job_pb2.Job()] * 11), "jobs"),
    (
        job_service_pb2.SubmitRequest(job=job_pb2.Job(trace_context={"k": "\x00"})),
        "job.trace_context['k']",
    ),
    (worker_service_pb2.RegisterWorkerRequest(queues=["q"] * 257), "queues"),
    (worker_service_pb2.RegisterWorkerRequest(hostname="h" * 256), "hostname"),
    (worker_service_pb2.RegisterWorkerRequest(task_types=["ok", "t\x00"]), "task_types[1]"),
    (
        worker_service_pb2.ReportOutcomesRequest(
            outcomes=[worker_service_pb2.Outcome(lease=worker_service_pb2.LeaseRef(job_id="\x00"))]
        ),
        "outcomes[0].lease.job_id",
    ),
    (admin_service_pb2.GetQueueRequest(name="\x00"), "name"),
    (
        admin_service_pb2.ReplayDeadLettersRequest(
            selector=admin_service_pb2.DeadLetterSelector(ids=["x"] * 11)
        ),
        "selector.ids",
    ),
    (job_service_pb2.ListJobsRequest(page_token="p" * 65), "page_token"),
    (job_service_pb2.ListJobsRequest(states=[1] * 17), "states"),
    (
        workflow_service_pb2.SubmitWorkflowRequest(nodes=[workflow_service_pb2.WorkflowNode()] * 6),
        "nodes",
    ),
    (
        workflow_service_pb2.SubmitWorkflowRequest(
            nodes=[workflow_service_pb2.WorkflowNode(key="a", depends_on=["b\x00"])]
        ),
        "nodes[0].depends_on[0]",
    ),
]


@pytest.mark.parametrize(("request_", "field"), CASES)
def test_a_field_over_its_bound_is_refused_naming_it(request_, field) -> None:
    with pytest.raises(InvalidArgument) as raised:
        check_request(request_, LIMITS)
    assert raised.value.field == field


def test_error_text_passes_the_guard_to_be_sanitised() -> None:
    request = worker_service_pb2.FailJobRequest(worker_id="w", error="e\x00" * 100_000)
    check_request(request, LIMITS)


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x02\xff\xfe", b"\x0a\x09ab", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", b"\x0b"],
)
def test_an_undecodable_body_becomes_invalid_argument_not_an_exception(data: bytes) -> None:
    decoded = decoder(job_service_pb2.GetJobRequest.FromString)(data)
    assert isinstance(decoded, Undecodable)
    with pytest.raises(InvalidArgument) as raised:
        check_request(decoded, LIMITS)
    assert raised.value.field == "request"
