"""HTTP endpoints for Prometheus and Kubernetes: /metrics, /healthz, /readyz; anything else is 404.

- `GET /metrics`: the registry in OpenMetrics 1.0 when the `Accept` header asks for it, else in the
  0.0.4 text format; gzip-compressed when `Accept-Encoding` allows it (as Prometheus' scrapes do).
  A `ScrapeObserver` (the receiver) is told when a render starts and when its response has been
  written completely: checkpoints name only what a completed scrape has shown (consumer/checkpoints.py).
  Only a request that announces a scrape timeout (`X-Prometheus-Scrape-Timeout-Seconds`, as every
  scraper built on Prometheus' scrape code does) is such a scrape, unless `scrapers` is `any`: a `curl`
  of a replica must not let its checkpoints pass counts Prometheus has not read. A scrape that took
  more than half the timeout it announces is not reported as completed: Prometheus may have given up
  on it and dropped what it showed.
- `GET /healthz` (liveness): 200 while the process and its event loop run — the answer itself is
  served by the event loop, so a blocked or dead loop fails the probe by not answering.
- `GET /readyz` (readiness): 200 when every readiness check passes, else 503; the JSON body lists
  each check and whether it passed (see `Health`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from consumer.metrics import Metrics

ReadinessCheck = Callable[[], tuple[bool, str]]

#: A scrape counts as completed only if its response was written within this share of the scrape
#: timeout that Prometheus announces; Prometheus' own clock started earlier (connection, queueing).
SCRAPE_TIMEOUT_SHARE = 0.5


#: The header Prometheus' scrape code sends with every scrape: its timeout in seconds.
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


def scrape_timeout(request: web.Request) -> float | None:
    """The scrape timeout the scraper announces (`SCRAPE_TIMEOUT_HEADER`); None when the header is
    absent or not a positive finite number (curl, a browser, scrapers not built on Prometheus')."""
    try:
        timeout = float(request.headers.get(SCRAPE_TIMEOUT_HEADER, ""))
    except ValueError:
        return None
    return timeout if 0 < timeout < math.inf else None


class ScrapeObserver(Protocol):
    def scrape_started(self) -> Any:
        """A render starts; what it returns is given back to `scrape_completed`."""

    def scrape_completed(self, token: Any) -> None:
        """The response of that render was written completely."""


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


def metrics_response(metrics: Metrics, request: web.Request) -> web.Response:
    """The exposition in the negotiated format. aiohttp compresses it when the request's
    Accept-Encoding names gzip (or deflate), in a worker thread above 4 KiB, off the event loop."""
    body, content_type = metrics.render_for(request.headers.get("Accept"))
    response = web.Response(body=body, headers={"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"})
    response.enable_compression()
    return response


def application(metrics: Metrics, health: Health, scrapes: ScrapeObserver | None = None,
                scrapers: str = "prometheus") -> web.Application:
    """`scrapers`: which requests are scrapes for `scrapes` (`checkpoint.scrapers`: `prometheus`, those
    that announce a scrape timeout; `any`, every GET)."""
    async def get_metrics(request: web.Request) -> web.Response:
        timeout = scrape_timeout(request)
        if scrapes is None or request.method != "GET" or (timeout is None and scrapers != "any"):
            return metrics_response(metrics, request)  # a curl: shows the counts, moves no checkpoint
        began = time.monotonic()
        token = scrapes.scrape_started()  # the render below is synchronous: it shows what was counted by now
        response = metrics_response(metrics, request)
        await response.prepare(request)
        await response.write_eof()  # raises if the client went away: then the scrape did not complete
        if timeout is None or time.monotonic() - began <= SCRAPE_TIMEOUT_SHARE * timeout:
            scrapes.scrape_completed(token)  # else Prometheus may have timed out and dropped it
        return response

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

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int,
                 scrapes: ScrapeObserver | None = None, scrapers: str = "prometheus") -> None:
        self._runner = web.AppRunner(application(metrics, health, scrapes, scrapers), access_log=None,
                                     handle_signals=False)
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
