"""consumer.http: /metrics over real HTTP negotiates OpenMetrics or the 0.0.4 text format from the
Accept header and compresses with gzip when Accept-Encoding allows it; both formats carry the same values."""

from __future__ import annotations

import gzip
import http.client

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from consumer.config import Buckets
from consumer.http import Health, HttpServer
from consumer.metrics import Metrics

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 2.x sends on every scrape (scrape.go, acceptHeader), and Prometheus 3's default.
PROMETHEUS_2_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                       "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                       "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
                       "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")


def populated() -> Metrics:
    """Counters, histograms and gauges, with label values and non-integer values."""
    m = Metrics(Buckets(), "1.2.3")
    d = m.domain
    d.operations.inc(tuple(f"op{i}" for i in range(len(d.operations.labelnames))), 3)
    d.operations.inc(tuple(f"other{i}" for i in range(len(d.operations.labelnames))), 0.5)
    for value in (0.01, 0.3, 2.0, 40.0):
        d.delivery_latency.observe(tuple("v" for _ in d.delivery_latency.labelnames), value)
    c = m.consumer
    c.checkpoints.labels("0", "ok").inc(7)
    c.partition_lag.labels("1").set(42)
    c.owned_partitions.set(2)
    c.batch_duration.observe(0.02)
    return m


@pytest.fixture
async def server():
    metrics = populated()
    http_server = HttpServer(metrics, Health(), "127.0.0.1", 0)
    await http_server.start()
    try:
        yield metrics, http_server.port
    finally:
        await http_server.stop()


async def get(port: int, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A real request from another thread (http.client neither negotiates nor decompresses anything itself)."""
    import asyncio

    def request() -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/metrics", headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    return await asyncio.to_thread(request)


def samples(families) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


async def test_without_headers_the_text_format_uncompressed(server) -> None:
    metrics, port = server
    status, headers, body = await get(port, {})
    assert status == 200
    assert headers["content-type"] == TEXT
    assert "content-encoding" not in headers
    assert body == metrics.render()
    values = samples(parse_text(body.decode()))
    assert values[("acs_consumer_checkpoints_total", (("outcome", "ok"), ("partition", "0")))] == 7.0


@pytest.mark.parametrize("accept", [PROMETHEUS_2_ACCEPT, PROMETHEUS_3_ACCEPT,
                                    "application/openmetrics-text; version=1.0.0"])
async def test_openmetrics_when_accepted_with_the_same_values(server, accept: str) -> None:
    _, port = server
    _, _, text_body = await get(port, {"Accept": "text/plain"})
    status, headers, body = await get(port, {"Accept": accept})
    assert status == 200
    assert headers["content-type"].startswith(OPENMETRICS), headers["content-type"]
    assert body.endswith(b"# EOF\n")
    openmetrics_values = samples(parse_openmetrics(body.decode()))
    text_values = samples(parse_text(text_body.decode()))
    assert openmetrics_values == text_values
    assert len(text_values) >= 20
    assert text_values[("acs_consumer_partition_lag_events", (("partition", "1"),))] == 42.0


@pytest.mark.parametrize("accept, content_type", [("", TEXT), (PROMETHEUS_2_ACCEPT, OPENMETRICS)])
async def test_gzip_when_accepted(server, accept: str, content_type: str) -> None:
    _, port = server
    _, _, plain = await get(port, {"Accept": accept})
    status, headers, body = await get(port, {"Accept": accept, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"].startswith(content_type)
    assert int(headers["content-length"]) == len(body) < len(plain)
    assert gzip.decompress(body) == plain
    assert "accept-encoding" in headers["vary"].lower()


async def test_identity_only_is_not_compressed(server) -> None:
    _, port = server
    _, headers, body = await get(port, {"Accept-Encoding": "identity"})
    assert "content-encoding" not in headers
    assert body.startswith(b"# HELP")


class Observer:
    """Records the scrapes the handler reports; each start bumps a gauge, so a render shows which start
    it followed."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.started = 0
        self.completed: list[int] = []

    def scrape_started(self) -> int:
        self.started += 1
        self.metrics.consumer.owned_partitions.set(self.started)
        return self.started

    def scrape_completed(self, token: int) -> None:
        self.completed.append(token)


@pytest.fixture
async def observed(request):
    """An observed server; `scrapers` (`checkpoint.scrapers`) by indirect parametrization, else `prometheus`."""
    metrics = populated()
    observer = Observer(metrics)
    http_server = HttpServer(metrics, Health(), "127.0.0.1", 0, scrapes=observer,
                             scrapers=getattr(request, "param", "prometheus"))
    await http_server.start()
    try:
        yield observer, http_server.port
    finally:
        await http_server.stop()


SCRAPE = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}  # what Prometheus' scrape code sends


@pytest.mark.parametrize("accept, encoding", [("", ""), (PROMETHEUS_3_ACCEPT, "gzip")])
async def test_an_observed_scrape_starts_before_its_render_and_completes_once_written(observed, accept, encoding) -> None:
    observer, port = observed
    headers = {**SCRAPE, "Accept": accept, "Accept-Encoding": encoding} if accept else SCRAPE
    for expected in (1, 2):
        status, response_headers, body = await get(port, headers)
        assert status == 200
        text = gzip.decompress(body) if encoding else body
        parse = parse_openmetrics if accept else parse_text
        # The render came after the start that bears its number, and the completion names that start.
        assert samples(parse(text.decode()))[("acs_consumer_owned_partitions", ())] == expected
        assert observer.completed == list(range(1, expected + 1))
        assert response_headers.get("content-encoding", "") == encoding


@pytest.mark.parametrize("timeout, completes", [("10", True), ("1e-9", False)])
async def test_a_scrape_slower_than_half_the_announced_timeout_does_not_complete(observed, timeout, completes) -> None:
    """Prometheus drops a scrape that outlasts its timeout; such a scrape must not let a checkpoint
    pass what it showed. (1 ns cannot be met; 10 s always is.)"""
    observer, port = observed
    status, _, _ = await get(port, {"X-Prometheus-Scrape-Timeout-Seconds": timeout})
    assert status == 200
    assert observer.started == 1
    assert observer.completed == ([1] if completes else [])


@pytest.mark.parametrize("headers", [{}, {"X-Prometheus-Scrape-Timeout-Seconds": "not-a-number"},
                                     {"X-Prometheus-Scrape-Timeout-Seconds": "0"},
                                     {"X-Prometheus-Scrape-Timeout-Seconds": "inf"}],
                         ids=["curl", "not-a-number", "zero", "inf"])
async def test_a_get_that_announces_no_scrape_timeout_shows_the_counts_and_is_no_scrape(observed, headers) -> None:
    """A curl of a replica (kubectl port-forward, a browser) must not let its checkpoints pass counts
    Prometheus has not read: only a request with a usable scrape timeout is a scrape."""
    observer, port = observed
    status, _, body = await get(port, headers)
    assert status == 200 and b"acs_consumer_owned_partitions" in body
    assert (observer.started, observer.completed) == (0, [])


@pytest.mark.parametrize("observed", ["any"], indirect=True)
async def test_with_scrapers_any_every_get_is_a_scrape(observed) -> None:
    """`checkpoint.scrapers: any`, for a scraper that sends no scrape timeout: a GET without the
    header completes (no timeout to be late for); one that announces a timeout is still held to it."""
    observer, port = observed
    assert (await get(port, {}))[0] == 200
    assert (await get(port, {"X-Prometheus-Scrape-Timeout-Seconds": "1e-9"}))[0] == 200
    assert (observer.started, observer.completed) == (2, [1])


async def test_head_and_other_paths_are_not_scrapes(observed) -> None:
    import asyncio

    observer, port = observed

    def request(method: str, path: str) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    assert await asyncio.to_thread(request, "HEAD", "/metrics") == 200
    assert await asyncio.to_thread(request, "GET", "/readyz") == 200
    assert await asyncio.to_thread(request, "GET", "/healthz") == 200
    assert (observer.started, observer.completed) == (0, [])
