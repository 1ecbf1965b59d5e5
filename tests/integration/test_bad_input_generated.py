"""Generated hostile requests over every RPC of JobService, WorkerService, AdminService,
ScheduleService and WorkflowService.

A seeded generator (JQ_FUZZ_SEED, default 9, so a failure reproduces; JQ_FUZZ_REQUESTS per
store, default 3000) starts from a plausible request for each method, built from what earlier
calls returned (job ids, workers, leases, queues), and replaces fields with hostile values:
NULs, huge strings and lists, extreme ints, times and durations, deep or broken JSON, bogus ids
and page tokens; some bodies go on the wire as bytes (invalid UTF-8 appended, truncated,
garbage). Every answer must be OK or a clear status, never INTERNAL or UNKNOWN (or a timeout),
and a refused request must leave the rows' fingerprint as it was.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

from jobq.core import bounds
from jobq.v1 import (
    admin_service_pb2,
    job_service_pb2,
    schedule_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)
from tests.integration import authed
from tests.integration.backends import BACKENDS, database_url, fingerprinter, running

SEED = int(os.environ.get("JQ_FUZZ_SEED", "9"))
REQUESTS = int(os.environ.get("JQ_FUZZ_REQUESTS", "3000"))
CALL_TIMEOUT = 20.0
NEVER = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}
FD = descriptor.FieldDescriptor

SERVICES = [
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
    worker_service_pb2.DESCRIPTOR.services_by_name["WorkerService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
    schedule_service_pb2.DESCRIPTOR.services_by_name["ScheduleService"],
    workflow_service_pb2.DESCRIPTOR.services_by_name["WorkflowService"],
]
METHODS = {m.name: m for service in SERVICES for m in service.methods}
SAMPLE_ID = "0190c6a1-7a3b-7cde-8f00-0123456789ab"


class State:
    """What earlier answers handed out, so generated requests reach past the first check."""

    def __init__(self) -> None:
        self.jobs: list[str] = [SAMPLE_ID]
        self.workers: list[str] = ["w-unknown"]
        self.leases: list[tuple[str, str, int]] = []  # worker, job id, attempt
        self.queues: list[str] = ["default"]
        self.schedules: list[str] = ["nightly"]
        self.workflows: list[str] = [SAMPLE_ID]

    def learn(self, name: str, response: Message) -> None:
        if name in ("Submit", "SubmitBatch"):
            results = [response] if name == "Submit" else list(response.results)
            self.jobs.extend(r.job.id for r in results)
        elif name == "RegisterWorker":
            self.workers.append(response.worker_id)
        elif name == "LeaseJobs":
            self.leases.extend((j.worker_id, j.id, j.attempt) for j in response.jobs)
        elif name == "CreateQueue":
            self.queues.append(response.name)
        elif name == "CreateSchedule":
            self.schedules.append(response.name)
        elif name == "SubmitWorkflow":
            self.workflows.append(response.id)
            self.jobs.extend(node.job.id for node in response.nodes)
        del self.jobs[:-200], self.leases[:-100], self.workers[:-50], self.workflows[:-50]


class Hostile:
    def __init__(self, rng: random.Random, state: State) -> None:
        self.rng = rng
        self.state = state
        # Inside a repeated field values stay small: a request stays within a few MB, so
        # the test never takes the machine's memory.
        self.in_list = 0

    def string(self) -> str:
        rng = self.rng
        job_id = rng.choice(self.state.jobs)
        pool = [
            "",
            "\x00",
            "a\x00b",
            "default",
            "Bad Queue!",
            "default\n",
            "x" * 63,
            "x" * 64,
            "x" * 65,
            "x" * 129,
            "x" * 256,
            "x" * 1001,
            "x" * 20_000,
            "é" * 100,
            "\u2028\ufeff",
            "\U0001f642" * 40,
            job_id,
            job_id.upper(),
            f"urn:uuid:{job_id}",
            "{" + job_id + "}",
            job_id.replace("-", ""),
            "' OR 1=1 --",
            "%s%s%n",
            "\\",
            "null",
            "weight",
            "name",
        ]
        if self.in_list:
            return rng.choice([p for p in pool if len(p) <= 1001])
        if rng.random() < 0.01:
            return "y" * rng.choice([300_000, 3_000_000])
        return rng.choice(pool)

    def json(self) -> str:
        return self.rng.choice(
            [
                "null",
                "{}",
                '{"n": 1}',
                "[" * 64 + "]" * 64,
                "[" * 65 + "]" * 65,
                "[" * 1000 + "]" * 1000,
                '{"a":' * 980 + "1" + "}" * 980,
                "[" * 20_000,
                '"\\u0000"',
                '{"\\u0000": 1}',
                '{"a": "\x00"}',
                "{bad",
                "",
                "NaN",
                "1e999999",
                '"' + "x" * 12_000 + '"',
                '{"a": 1, "a": 2}',
                "]]]][[[[",
            ]
        )

    def integer(self, bits: int) -> int:
        top = 2 ** (bits - 1)
        return self.rng.choice([0, 1, -1, 2, 100, 101, -101, 1000, 1001, 10_001, top - 1, -top])

    def double(self) -> float:
        return self.rng.choice([0.0, -0.0, 0.5, 1.0, 1.5, -1.0, math.nan, math.inf, -math.inf])

    def timestamp(self) -> tuple[int, int]:
        return self.rng.choice(
            [
                (0, 0),
                (1_800_000_000, 0),
                (bounds.MAX_TIMESTAMP_SECONDS, 999_999_999),
                (bounds.MAX_TIMESTAMP_SECONDS + 1, 0),
                (bounds.MIN_TIMESTAMP_SECONDS, 0),
                (bounds.MIN_TIMESTAMP_SECONDS - 1, 0),
                (2**63 - 1, 0),
                (-(2**63), 0),
                (0, -1),
                (0, 1_000_000_000),
                (-1, 999_999_999),
            ]
        )

    def duration(self) -> tuple[int, int]:
        return self.rng.choice(
            [
                (0, 0),
                (1, 0),
                (0, 50_000_000),
                (-1, 0),
                (0, -1),
                (1, -1),
                (86_400, 0),
                (86_401, 0),
                (366 * 86_400, 0),
                (10**11, 0),
                (315_576_000_000, 0),
                (315_576_000_001, 0),
                (2**63 - 1, 0),
                (1, 1_000_000_000),
            ]
        )

    def trace_context(self) -> dict[str, str]:
        rng = self.rng
        return rng.choice(
            [
                {},
                {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
                {"traceparent": self.string()},
                {self.string(): "v"},
                {f"k{i}": "v" for i in range(rng.choice([33, 500]))},
                {f"k{i}": "v" * 8000 for i in range(3)},
            ]
        )

    def count(self) -> int:
        return self.rng.choice([0, 1, 2, 3, 51, 257, 1025, 5000])

    def mutate(self, message: Message, fields: int) -> None:
        """Replace `fields` random fields of `message` (and maybe of its sub-messages)."""
        candidates = list(message.DESCRIPTOR.fields)
        for fd in self.rng.sample(candidates, min(fields, len(candidates))):
            self.set_field(message, fd)

    def set_field(self, message: Message, fd: FD) -> None:
        rng = self.rng
        name = fd.name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            getattr(message, name).clear()
            getattr(message, name).update(self.trace_context())
            return
        if fd.is_repeated:
            field = getattr(message, name)
            del field[:]
            count = self.count()
            self.in_list += 1
            try:
                if fd.type == FD.TYPE_MESSAGE:
                    for _ in range(min(count, 60)):
                        self.mutate(field.add(), rng.randint(0, 2))
                elif fd.type == FD.TYPE_STRING:
                    one = self.string() if rng.random() < 0.5 else None
                    field.extend(one if one is not None else f"q{i}" for i in range(count))
                elif fd.type == FD.TYPE_ENUM:
                    field.extend(
                        rng.choice([-1, 0, 1, 5, 7, 8, 99]) for _ in range(min(count, 300))
                    )
            finally:
                self.in_list -= 1
            return
        if fd.type == FD.TYPE_MESSAGE:
            sub = getattr(message, name)
            full = fd.message_type.full_name
            if full == "google.protobuf.Timestamp":
                sub.seconds, sub.nanos = self.timestamp()
            elif full == "google.protobuf.Duration":
                sub.seconds, sub.nanos = self.duration()
            else:
                sub.SetInParent()
                self.mutate(sub, rng.randint(1, 3))
        elif fd.type == FD.TYPE_STRING:
            json_field = name in ("payload", "result")
            setattr(message, name, self.json() if json_field else self.string())
        elif fd.type == FD.TYPE_BOOL:
            setattr(message, name, rng.random() < 0.5)
        elif fd.type == FD.TYPE_DOUBLE:
            setattr(message, name, self.double())
        elif fd.type == FD.TYPE_ENUM:
            setattr(message, name, rng.choice([-1, 0, 1, 7, 99]))
        elif fd.type in (FD.TYPE_INT32, FD.TYPE_INT64):
            setattr(message, name, self.integer(32 if fd.type == FD.TYPE_INT32 else 64))

    def wire(self, body: bytes, message: Message) -> bytes:
        """A body that is not a valid message: bad UTF-8 in a string field, cut, or noise."""
        rng = self.rng
        strings = [f for f in message.DESCRIPTOR.fields if f.type == FD.TYPE_STRING]
        choice = rng.random()
        if strings and choice < 0.6:
            fd = rng.choice(strings)
            bad = rng.choice(
                [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\x80", b"\xf4\x90\x80\x80"]
            )
            return body + _key(fd.number, 2) + _varint(len(bad)) + bad
        if body and choice < 0.8:
            return body[: rng.randrange(len(body))] + b"\x0a\x7f"
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def plausible(name: str, state: State, rng: random.Random) -> dict[str, Any]:
    """Keyword arguments for a request of `name` that could succeed."""
    job_id = rng.choice(state.jobs)
    worker = rng.choice(state.workers)
    queue = rng.choice(state.queues)
    lease: dict[str, Any] = {"job_id": job_id, "attempt": 1}
    if state.leases and rng.random() < 0.8:
        worker, leased, attempt = rng.choice(state.leases)
        lease = {"job_id": leased, "attempt": attempt}
    job = {"type": "echo", "payload": '{"n": 1}', "queue": queue}
    keyed = dict(job)
    if rng.random() < 0.5:  # lease-time limit keys (ADR 0017); a Job's, not a ScheduledJob's
        keyed |= {"rate_key": "cust-1", "concurrency_key": rng.choice(["cust-1", "cust-2"])}
    limits = rng.sample(
        ["weight", "rate_limit", "rate_burst", "key_rate_limit", "key_rate_burst",
         "key_concurrency_limit"], 2,
    )  # fmt: skip
    schedule = rng.choice(state.schedules)
    workflow = rng.choice(state.workflows)
    calendar: dict[str, Any] = rng.choice(
        [{"cron": "*/5 * * * *", "time_zone": "Europe/Berlin"}, {"interval": {"seconds": 60}}]
    )
    return {
        "Submit": {"job": keyed},
        "SubmitBatch": {"jobs": [keyed] * rng.randint(1, 3)},
        "GetJob": {"id": job_id},
        "ListJobs": {"page_size": rng.randint(0, 5)},
        "CancelJob": {"id": job_id, "reason": "r"},
        "WatchJob": {"id": job_id},
        "RegisterWorker": {"hostname": "h", "queues": [queue], "capacity": 4},
        "Heartbeat": {"worker_id": worker, "leases": [lease]},
        "LeaseJobs": {"worker_id": worker, "max_jobs": 2},
        "ReportProgress": {"worker_id": worker, "lease": lease, "progress": 0.5, "message": "m"},
        "CompleteJob": {"worker_id": worker, "lease": lease, "result": '{"ok": true}'},
        "FailJob": {"worker_id": worker, "lease": lease, "error": "e", "retryable": True},
        "ReportOutcomes": {
            "worker_id": worker,
            "outcomes": [{"lease": lease, "completed": {"result": "1"}}],
        },
        "ReleaseJobs": {"worker_id": worker, "leases": [lease]},
        "DeregisterWorker": {"worker_id": worker},
        "CreateQueue": {"queue": {"name": f"q{rng.randrange(10_000)}"}},
        "UpdateQueue": {
            "queue": {"name": queue, **dict.fromkeys(limits, 2)},
            "update_mask": {"paths": limits},
        },
        "GetQueue": {"name": queue},
        "ListQueues": {},
        "PauseQueue": {"name": queue},
        "ResumeQueue": {"name": queue},
        "PurgeQueue": {"name": queue},
        "GetQueueStats": {"name": queue},
        "ListWorkers": {},
        "DrainWorker": {"worker_id": worker},
        "ListDeadLetters": {"queue": queue},
        "ReplayDeadLetters": {"selector": {"ids": [job_id]}},
        "DiscardDeadLetters": {"selector": {"queue": queue}},
        "GetClusterStats": {},
        "CreateApiKey": {"tenant": "acme", "roles": ["submitter"], "description": "d"},
        "ListApiKeys": {"tenant": rng.choice(["", "acme"])},
        "RevokeApiKey": {"id": rng.choice(["0000000000000001", "0123456789abcdef"])},
        "CreateSchedule": {
            "schedule": {"name": f"s{rng.randrange(10_000)}", "job": job, **calendar}
        },
        "UpdateSchedule": {
            "schedule": {"name": schedule, "overlap": 2, "jitter": {"seconds": 5}},
            "update_mask": {"paths": rng.sample(["overlap", "jitter", "cron", "job.queue"], 2)},
        },
        "GetSchedule": {"name": schedule},
        "ListSchedules": {},
        "PauseSchedule": {"name": schedule},
        "ResumeSchedule": {"name": schedule},
        "DeleteSchedule": {"name": schedule},
        "TriggerSchedule": {"name": schedule},
        "SubmitWorkflow": {
            "name": "w",
            "on_failure": rng.choice([0, 1, 2]),
            "nodes": [
                {"key": "a", "job": job},
                {"key": "b", "job": job, "depends_on": ["a"]},
                {"key": "c", "job": job, "depends_on": rng.choice([["a", "b"], ["b"]])},
            ],
        },
        "GetWorkflow": {"id": workflow},
        "WatchWorkflow": {"id": workflow},
        "CancelWorkflow": {"id": workflow, "reason": "r"},
        "GetParentResults": {
            "worker_id": worker,
            "job_id": lease["job_id"],
            "attempt": lease["attempt"],
        },
    }[name]


def _path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _identity(body: bytes) -> bytes:
    return body


async def _call(channel: grpc.aio.Channel, method: descriptor.MethodDescriptor, body: bytes) -> Any:
    """(code, response bytes) of one call; a stream is read for its first message."""
    path = _path(method)
    if method.server_streaming:
        call = channel.unary_stream(path, _identity, _identity)(body, timeout=CALL_TIMEOUT)
        try:
            first = await call.read()
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details(), None
        code = await call.code() if first is grpc.aio.EOF else grpc.StatusCode.OK
        call.cancel()
        return code, "", None if first is grpc.aio.EOF else first
    try:
        response = await channel.unary_unary(path, _identity, _identity)(body, timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        return exc.code(), exc.details(), None
    return grpc.StatusCode.OK, "", response


@pytest.mark.parametrize("backend", BACKENDS)
async def test_hostile_requests_never_reach_internal_and_refusals_change_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    rng = random.Random(f"{SEED}-{backend}")
    state = State()
    hostile = Hostile(rng, state)
    url = database_url(request, backend, tmp_path)
    codes: collections.Counter[str] = collections.Counter()
    methods_seen: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    settings = {
        "max_payload_bytes": 10_000,
        "max_batch": 50,
        "max_lease_wait": dt.timedelta(milliseconds=50),
    }
    classes: dict[str, Callable[..., Message]] = {
        name: message_factory.GetMessageClass(m.input_type) for name, m in METHODS.items()
    }
    names = sorted(METHODS)
    async with running(url, **settings) as app:
        fingerprint, close = fingerprinter(url)
        try:
            async with authed.channel(
                f"127.0.0.1:{app.grpc_port}",
                options=[
                    ("grpc.max_send_message_length", 64 << 20),
                    ("grpc.max_receive_message_length", 64 << 20),
                ],
            ) as channel:
                before = fingerprint()
                for number in range(REQUESTS):
                    name = names[number % len(names)] if number < len(names) else rng.choice(names)
                    method = METHODS[name]
                    message = classes[name](**plausible(name, state, rng))
                    roll = rng.random()
                    if roll < 0.8:
                        hostile.mutate(message, rng.randint(1, 3))
                    body = message.SerializeToString()
                    assert len(body) < 16 << 20, (
                        f"#{number} {name}: the generator made {len(body)} bytes"
                    )
                    if 0.8 <= roll < 0.9:
                        body = hostile.wire(body, message)
                    started = time.perf_counter()
                    code, details, response = await _call(channel, method, body)
                    took = time.perf_counter() - started
                    if took > 1.0:
                        print(f"slow #{number} {name} {code.name} {took:.1f}s {len(body)} bytes")
                    codes[code.name] += 1
                    methods_seen[name] += 1
                    if code in NEVER:
                        failures.append(f"#{number} {name} {code.name}: {details[:300]}")
                        continue
                    if code is grpc.StatusCode.OK:
                        if response is not None:
                            out = message_factory.GetMessageClass(method.output_type)
                            state.learn(name, out.FromString(response))
                        before = fingerprint()
                    elif (after := fingerprint()) != before:
                        failures.append(f"#{number} {name} {code.name} changed rows: {details}")
                        before = after
        finally:
            close()
    print(
        f"\n{backend}: {sum(codes.values())} generated requests over {len(methods_seen)} RPCs "
        f"(seed {SEED}): {dict(sorted(codes.items()))}"
    )
    assert set(methods_seen) == set(METHODS), "every RPC of the five services is driven"
    assert not failures, "\n".join(failures[:20])
