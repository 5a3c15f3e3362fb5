"""HTTP endpoints for Prometheus and Kubernetes: /metrics, /healthz, /readyz; anything else is 404.

- `GET /metrics`: the registry in Prometheus text format.
- `GET /healthz` (liveness): 200 while the process and its event loop run — the answer itself is
  served by the event loop, so a blocked or dead loop fails the probe by not answering.
- `GET /readyz` (readiness): 200 when every readiness check passes, else 503; the JSON body lists
  each check and whether it passed (see `Health`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from consumer.metrics import Metrics

ReadinessCheck = Callable[[], tuple[bool, str]]


class Health:
    """Named readiness checks, each returning (ok, detail)."""

    def __init__(self) -> None:
        self.checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    def ready(self) -> tuple[bool, dict[str, dict[str, object]]]:
        report = {}
        for name, check in self.checks.items():
            ok, detail = check()
            report[name] = {"ok": ok, "detail": detail}
        return all(item["ok"] for item in report.values()), report


def application(metrics: Metrics, health: Health) -> web.Application:
    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, report = health.ready()
        return web.json_response({"status": "ready" if ok else "not ready", "checks": report}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    """Runs the application on host:port inside the current event loop."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int) -> None:
        self._runner = web.AppRunner(application(metrics, health), access_log=None, handle_signals=False)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses  # the bound socket tells the real port when 0 was asked for
        if addresses:
            self.port = addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()
