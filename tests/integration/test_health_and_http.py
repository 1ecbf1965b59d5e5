"""Standard gRPC health and reflection, and the HTTP side port."""

from __future__ import annotations

import aiohttp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc


async def test_grpc_health_reports_serving(channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "jobq.v1.JobService", "jobq.v1.WorkerService", "jobq.v1.AdminService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_every_service(channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    async for response in stub.ServerReflectionInfo(requests()):
        names = {s.name for s in response.list_services_response.service}
        break
    assert {
        "jobq.v1.JobService",
        "jobq.v1.WorkerService",
        "jobq.v1.AdminService",
        "grpc.health.v1.Health",
    } <= names


async def test_http_side_port(server, client) -> None:
    await client.submit("echo", {})
    base = f"http://127.0.0.1:{server.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as live:
            assert live.status == 200
        async with http.get(f"{base}/readyz") as ready:
            assert ready.status == 200
            assert (await ready.json())["status"] == "ready"
        async with http.get(f"{base}/metrics") as metrics:
            text = await metrics.text()
    assert 'jq_job_total{queue="default",status="submitted"} 1.0' in text
    assert (
        'jq_grpc_request_duration_seconds_count{code="OK",method="/jobq.v1.JobService/Submit"}'
        in text
    )


async def test_readyz_fails_while_draining(server) -> None:
    server._draining = True
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{server.http_port}/readyz") as ready,
    ):
        assert ready.status == 503
        assert (await ready.json())["reason"] == "draining"
    server._draining = False


async def test_grpc_health_follows_readiness(server, channel, monkeypatch) -> None:
    import asyncio

    from jobq.server import app as server_app

    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="jobq.v1.JobService")

    async def unavailable() -> str:
        return "store unavailable: test"

    monkeypatch.setattr(server_app, "HEALTH_EVERY", 0.05)
    server._health_watch.cancel()
    server._health_watch = asyncio.create_task(server._follow_readiness())
    monkeypatch.setattr(server, "readiness", unavailable)
    for _ in range(100):
        if (await stub.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING:
            break
        await asyncio.sleep(0.05)
    assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    monkeypatch.undo()
    for _ in range(100):
        if (await stub.Check(request)).status == health_pb2.HealthCheckResponse.SERVING:
            break
        await asyncio.sleep(0.05)
    assert (await stub.Check(request)).status == health_pb2.HealthCheckResponse.SERVING
