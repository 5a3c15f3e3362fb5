"""HTTP endpoints for Prometheus and Kubernetes: /metrics, /healthz, /readyz; anything else is 404.

- `GET /metrics`: the registry in OpenMetrics 1.0 when the `Accept` header asks for it, else in the
  text format (`consumer.metrics.negotiate`: a header that names only `dots` escaping or another
  OpenMetrics version is answered 406); gzip-compressed when `Accept-Encoding` allows it (as
  Prometheus' scrapes do). Requests that arrive together share one render (consumer/shared_renders.py).
  With `http.bearer_token_path` set, only a request with that token (consumer/scrape_auth.py) is
  answered, others get 401 and are no scrape.
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

Connections are bounded (consumer/http_limits.py): in number, per address, in the time a request may
take to arrive, and (aiohttp's `keepalive_timeout`) in idle time. Refusals are counted in
`acs_consumer_http_refused_total{reason}`, never logged (a flood must not become a log flood).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from consumer.http_limits import ConnectionLimits, GuardedSite
from consumer.metrics import Metrics, negotiate
from consumer.scrape_auth import BearerToken
from consumer.settings import HttpSettings
from consumer.shared_renders import ScrapeObserver, SharedRenders

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


def metrics_response(body: bytes, content_type: str) -> web.Response:
    """aiohttp compresses it when the request's Accept-Encoding names gzip (or deflate), in a worker
    thread above 4 KiB, off the event loop."""
    response = web.Response(body=body, headers={"Content-Type": content_type, "Vary": "Accept, Accept-Encoding"})
    response.enable_compression()
    return response


def _refusal(status: type[web.HTTPException], text: str, **headers: str) -> web.HTTPException:
    return status(text=text + "\n", headers=headers or None)


def application(metrics: Metrics, health: Health, scrapes: ScrapeObserver | None = None,
                scrapers: str = "prometheus", settings: HttpSettings | None = None,
                limits: ConnectionLimits | None = None) -> web.Application:
    """`scrapers`: which requests are scrapes for `scrapes` (`checkpoint.scrapers`: `prometheus`, those
    that announce a scrape timeout; `any`, every GET). `settings`: the `http` section (render reuse,
    bearer token); `limits`: told when each request arrives (`ConnectionLimits.request_arrived`)."""
    settings = settings or HttpSettings()
    renders = SharedRenders(metrics, scrapes, settings.render_reuse_seconds)
    token = BearerToken(Path(settings.bearer_token_path)) if settings.bearer_token_path else None
    refused = metrics.consumer.http_refused

    async def get_metrics(request: web.Request) -> web.Response:
        if token is not None and not token.authorizes(request.headers.get("Authorization")):
            refused.labels("unauthorized").inc()
            raise _refusal(web.HTTPUnauthorized, "/metrics requires a bearer token", **{"WWW-Authenticate": "Bearer"})
        exposition = negotiate(request.headers.get("Accept"))
        if exposition is None:
            refused.labels("not_acceptable").inc()
            raise _refusal(web.HTTPNotAcceptable, "/metrics is served as OpenMetrics 1.0.0 or the text format, "
                           "names escaped with underscores, values or allow-utf-8 (not dots)")
        timeout = scrape_timeout(request)
        began = time.monotonic()
        scrape = scrapes is not None and request.method == "GET" and (timeout is not None or scrapers == "any")
        render = await renders.get(exposition.open_metrics, scrape)
        response = metrics_response(render.body, exposition.content_type)
        if scrapes is None or not scrape:
            return response  # a curl: shows the counts, moves no checkpoint
        await response.prepare(request)
        await response.write_eof()  # raises if the client went away: then the scrape did not complete
        if timeout is None or time.monotonic() - began <= SCRAPE_TIMEOUT_SHARE * timeout:
            scrapes.scrape_completed(render.snapshot)  # else Prometheus may have timed out and dropped it
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, report = health.ready()
        return web.json_response({"status": "ready" if ok else "not ready", "checks": report},
                                 status=200 if ok else 503)

    @web.middleware
    async def arrived(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if limits is not None:
            limits.request_arrived(request.transport)
        return await handler(request)

    app = web.Application(middlewares=[arrived])
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    """Runs the application on host:port inside the current event loop, within the limits of `settings`
    (consumer/http_limits.py; aiohttp closes idle connections after `keepalive_timeout_seconds`)."""

    def __init__(self, metrics: Metrics, health: Health, host: str, port: int,
                 scrapes: ScrapeObserver | None = None, scrapers: str = "prometheus",
                 settings: HttpSettings | None = None) -> None:
        settings = settings or HttpSettings()
        refused = metrics.consumer.http_refused
        self.limits = ConnectionLimits(settings.max_connections, settings.max_connections_per_client,
                                       settings.header_timeout_seconds, settings.send_timeout_seconds,
                                       lambda reason: refused.labels(reason).inc())
        app = application(metrics, health, scrapes, scrapers, settings, self.limits)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     keepalive_timeout=settings.keepalive_timeout_seconds)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = GuardedSite(self._runner, self._host, self._port, self.limits)
        await site.start()
        addresses = self._runner.addresses  # the bound socket tells the real port when 0 was asked for
        if addresses:
            self.port = addresses[0][1]

    async def stop(self) -> None:
        await self._runner.cleanup()
