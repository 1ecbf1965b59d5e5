"""The HTTP side port: /healthz (liveness), /readyz (readiness), /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)

ReadinessCheck = Callable[[], Awaitable[str | None]]  # None: ready, else why not


def build_http_app(
    registry: CollectorRegistry, readiness: ReadinessCheck | None
) -> web.Application:
    # No `<name>_created` series: each is a timestamp that reads like a count (92 of them on
    # a busy server) and no rule or panel uses one. prometheus_client keeps this switch
    # per process, read at each scrape; every jobq process serves metrics through here.
    disable_created_metrics()  # type: ignore[no-untyped-call]

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        problem = await readiness() if readiness else None
        if problem:
            return web.json_response({"status": "unavailable", "reason": problem}, status=503)
        return web.json_response({"status": "ready"})

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


class HttpSidePort:
    def __init__(self, app: web.Application, host: str, port: int, setting: str = "") -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self._setting = setting  # the variable an operator sets to move the port
        self.port = port

    async def start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            hint = f" (set {self._setting} to a free port)" if self._setting else ""
            raise OSError(
                f"cannot listen for HTTP on {self._host}:{self._port}: {exc.strerror or exc}{hint}"
            ) from None
        addresses = self._runner.addresses  # (host, port, ...) of each listening socket
        if addresses:
            self.port = addresses[0][1]
        return self.port

    async def stop(self) -> None:
        await self._runner.cleanup()
