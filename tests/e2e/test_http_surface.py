"""The HTTP surface under attack (issue 25, items 1 and 2), against `HttpServer` in a process of its own
with the registry at the series budget (`bench/bench_render.py`'s `reachable`: every family as full
as its labels allow, 1.1 MB per render) and the production `http` settings unless a test says otherwise.

- Many clients scraping the most expensive format the server accepts (OpenMetrics, names escaped
  with `values`, gzip: what took prometheus_client's generic writer ~90 ms of the event loop per
  request) while another thread polls `/healthz`: every probe is answered in under 1 s.
- In a process limited to 256 file descriptors, 300 connections that send half a request and stop:
  the ones past `http.max_connections` are closed at once, the others at `http.header_timeout_seconds`,
  and `/healthz` is answered.
- A real Prometheus scraping with a bearer token from a file (the scrape config a ServiceMonitor's
  `authorization` becomes): refused (`up` 0) and no scrape for the checkpoints while its token is not
  the consumer's; once the consumer's token file is rotated to it, without a restart, `up` 1 and its
  scrapes complete.
"""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from acs_sms_devtools.prometheus import PrometheusServer
from acs_sms_devtools.scrape import free_port, prometheus_headers
from consumer.config import HttpSettings
from consumer.http import Health, HttpServer
from tests.e2e.test_responsiveness import HealthPoller
from tests.test_http import Observer, populated

ROOT = Path(__file__).resolve().parents[2]

#: The server: the registry at the series budget, `HttpServer` with the `http` settings given as JSON.
SERVER = """
import asyncio, json, sys
from bench.bench_render import reachable
from consumer.config import HttpSettings
from consumer.http import Health, HttpServer

async def main():
    server = HttpServer(reachable(2000), Health(), "127.0.0.1", int(sys.argv[1]),
                        settings=HttpSettings(**json.loads(sys.argv[2])))
    await server.start()
    print("serving", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

MOST_EXPENSIVE = "application/openmetrics-text; version=1.0.0; escaping=values"


@contextmanager
def http_server(tmp_path: Path, settings: str = "{}", max_files: int | None = None) -> Iterator[int]:
    port = free_port()

    def limit() -> None:
        if max_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port), settings], cwd=ROOT, stdout=log,
                               stderr=subprocess.STDOUT, preexec_fn=limit,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        log.close()


class Scrapers:
    """`count` clients, each from its own address (127.0.0.2, 127.0.0.3, ...: as many scrapers would
    be), scraping `/metrics` back to back as Prometheus does (scrape timeout, gzip) in `accept`'s
    format, each for at most `seconds`."""

    def __init__(self, port: int, count: int, accept: str, seconds: float) -> None:
        self.port = port
        self.headers = {**prometheus_headers(10), "Accept": accept, "Accept-Encoding": "gzip"}
        self.seconds = seconds
        self.statuses: list[int] = []
        self.threads = [threading.Thread(target=self._run, args=(f"127.0.0.{2 + i}",), daemon=True)
                        for i in range(count)]

    def _run(self, source: str) -> None:
        until = time.monotonic() + self.seconds
        while time.monotonic() < until:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(source, 0))
            try:
                connection.request("GET", "/metrics", headers=self.headers)
                response = connection.getresponse()
                response.read()
                self.statuses.append(response.status)
            except OSError:
                self.statuses.append(0)
            finally:
                connection.close()

    def __enter__(self) -> Scrapers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join(self.seconds + 15)


@pytest.mark.exclusive  # the probe's latency is the point: no neighbour test's load beside it
def test_healthz_answers_within_1s_while_many_clients_scrape_the_most_expensive_accepted_format(tmp_path: Path) -> None:
    with http_server(tmp_path) as port:
        with HealthPoller(port) as poller, Scrapers(port, 16, MOST_EXPENSIVE, seconds=8) as scrapers:
            pass
    latencies = [latency for _, latency in poller.answers]
    assert len(latencies) >= 20 and None not in latencies, poller.answers
    assert len(scrapers.statuses) >= 16 and set(scrapers.statuses) == {200}, set(scrapers.statuses)
    print(f"\n{len(scrapers.statuses)} scrapes by 16 clients; /healthz n={len(latencies)} "
          f"max {max(latencies) * 1000:.0f} ms, p50 {sorted(latencies)[len(latencies) // 2] * 1000:.0f} ms")
    assert max(latencies) < 1.0, sorted(latencies)[-5:]


def test_half_requests_cannot_hold_every_descriptor_and_healthz_answers(tmp_path: Path) -> None:
    """The attack of issue 25: 300 connections that stop halfway through their headers, against a
    process limited to 256 descriptors."""
    settings = '{"header_timeout_seconds": 2, "max_connections_per_client": 300}'  # the total limit at work
    with http_server(tmp_path, settings, max_files=256) as port:
        sockets = []
        try:
            for _ in range(300):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Half: ")
                sockets.append(sock)
            started = time.monotonic()
            for sock in sockets:  # every one closed by the server: at once, or at the header deadline
                sock.settimeout(max(0.1, started + 6 - time.monotonic()))
                try:
                    assert sock.recv(1024) == b""
                except ConnectionResetError:
                    pass
            closed_after = time.monotonic() - started
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                assert response.status == 200
        finally:
            for sock in sockets:
                sock.close()
    assert closed_after < 4, closed_after


async def test_a_real_prometheus_scrapes_only_with_the_token_and_only_then_moves_checkpoints(tmp_path: Path) -> None:
    import asyncio

    consumer_token, prometheus_token = tmp_path / "consumer-token", tmp_path / "prometheus-token"
    consumer_token.write_text("old-token\n")
    prometheus_token.write_text("new-token\n")
    metrics = populated()
    observer = Observer(metrics)
    server = HttpServer(metrics, Health(), "127.0.0.1", 0, scrapes=observer,
                        settings=HttpSettings(bearer_token_path=str(consumer_token)))
    await server.start()
    target = f"127.0.0.1:{server.port}"
    prometheus = PrometheusServer(tmp_path / "prometheus", [target], scrape_interval=0.5,
                                  authorization={"type": "Bearer", "credentials_file": str(prometheus_token)})

    def health() -> str:
        return prometheus.target_health().get(target, "unknown")

    try:
        await asyncio.to_thread(prometheus.start)
        await asyncio.to_thread(prometheus.wait_for, lambda: health() == "down", 20, "a refused scrape")
        assert observer.completed == [] and observer.started == 0
        refused = metrics.consumer.http_refused.labels("unauthorized")._value.get()
        assert refused >= 1
        consumer_token.write_text("new-token\n")  # rotated: the consumer re-reads the file
        await asyncio.to_thread(prometheus.wait_for, lambda: health() == "up", 20, "an accepted scrape")
        await asyncio.to_thread(prometheus.wait_for,
                                lambda: prometheus.value('acs_consumer_build_info{version="1.2.3"}') == 1, 20,
                                "the series in Prometheus")
        assert observer.completed and observer.completed == list(range(1, len(observer.completed) + 1))
    finally:
        await asyncio.to_thread(prometheus.close)
        await server.stop()
