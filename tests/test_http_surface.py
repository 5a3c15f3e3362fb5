"""consumer/http.py's surface (issue 25, items 1-3), over real HTTP against `HttpServer`:

- formats: every format `/metrics` answers costs the direct render; `dots` escaping and OpenMetrics
  versions other than 1.0.0 are refused with 406; an unparseable version no longer makes a 500;
- concurrent scrapes share one render per `http.render_reuse_seconds` and each completes the snapshot
  of the render it received;
- connection limits: partial requests are closed after `http.header_timeout_seconds`, connections past
  `http.max_connections` (or `http.max_connections_per_client` from one address) are refused, idle ones closed after `http.keepalive_timeout_seconds`, and
  `/healthz` answers meanwhile;
- the bearer token of `http.bearer_token_path`: required on `/metrics` only, re-read when the file
  changes, and only an authenticated scrape completes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from consumer.config import Buckets, HttpSettings
from consumer.http import Health, HttpServer
from consumer.metrics import Metrics, negotiate
from tests.test_http import SCRAPE, Observer, get, populated, samples

OPENMETRICS_VALUES = "application/openmetrics-text; version=1.0.0; escaping=values"


async def serving(settings: HttpSettings, observer: bool = False) -> tuple[HttpServer, Metrics, Observer | None]:
    metrics = populated()
    watcher = Observer(metrics) if observer else None
    server = HttpServer(metrics, Health(), "127.0.0.1", 0, scrapes=watcher, settings=settings)
    await server.start()
    return server, metrics, watcher


def refused(metrics: Metrics, reason: str) -> float:
    return metrics.consumer.http_refused.labels(reason)._value.get()


# --- formats -------------------------------------------------------------------------------------

@pytest.mark.parametrize("accept", [
    "text/plain; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=1.0.0; escaping=dots",
    "application/openmetrics-text; version=2.0.0",
    "application/openmetrics-text; version=1.x",  # prometheus_client's chooser raised TypeError: a 500
    "application/openmetrics-text; version=1.0.0; escaping=dots, text/plain; version=1.0.0; escaping=dots",
])
async def test_formats_only_prometheus_clients_generic_writer_renders_are_refused_with_406(accept) -> None:
    server, metrics, _ = await serving(HttpSettings())
    try:
        status, headers, body = await get(server.port, {"Accept": accept})
    finally:
        await server.stop()
    assert status == 406, body
    assert b"dots" in body
    assert refused(metrics, "not_acceptable") == 1


@pytest.mark.parametrize("accept, open_metrics", [
    ("application/openmetrics-text; version=1.0.0; escaping=dots, */*", False),
    ("application/openmetrics-text; version=1.0.0; escaping=dots, application/openmetrics-text", True),
    ("application/openmetrics-text;version=2.0.0,text/plain;version=1.0.0;escaping=values", False),
])
def test_a_refused_entry_falls_back_to_the_next_one_the_header_names(accept, open_metrics) -> None:
    exposition = negotiate(accept)
    assert exposition is not None and exposition.open_metrics is open_metrics


def test_openmetrics_with_values_escaping_leaves_legacy_names_as_they_are() -> None:
    """The escaping scheme `values` leaves a valid legacy name unchanged (prometheus_client's own
    `escape_metric_name`; Prometheus' `model.EscapeName`); prometheus_client's OpenMetrics writer
    escapes the sample names but not their HELP and TYPE lines, an exposition no parser reads as one
    family. The answer is the OpenMetrics render, which parses with every sample in its family."""
    m = populated()
    body, content_type = m.render_for(OPENMETRICS_VALUES)
    assert content_type.endswith("escaping=values")
    assert body == m.render_for("application/openmetrics-text; version=1.0.0")[0]
    families = list(parse_openmetrics(body.decode()))
    assert samples(families)[("acs_sms_operations_total", tuple(sorted(zip(
        m.domain.operations.labelnames, (f"op{i}" for i in range(5)), strict=True))))] == 3


def test_every_accepted_format_costs_the_direct_render() -> None:
    """Each format a real scraper may ask for, rendered at about the cost of the 0.0.4 text format
    (the direct render); prometheus_client's generic writer took ~25x (issue 25)."""
    from bench.bench_render import reachable

    m = reachable(2000)
    accepts = ["", "application/openmetrics-text; version=1.0.0", OPENMETRICS_VALUES,
               "text/plain; version=1.0.0; escaping=values", "text/plain; version=1.0.0; escaping=allow-utf-8",
               "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8"]

    def cost(accept: str) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            m.render_for(accept)
            best = min(best, time.process_time() - started)
        return best

    baseline = cost("")
    for accept in accepts:
        assert cost(accept) < 3 * baseline + 0.002, accept


# --- shared renders -------------------------------------------------------------------------------

class CountingRenderer:
    def __init__(self) -> None:
        self.renders = 0

    def render_exposition(self, open_metrics: bool) -> bytes:
        self.renders += 1
        return b"om %d" % self.renders if open_metrics else b"text %d" % self.renders


async def test_requests_that_arrive_while_a_render_is_pending_share_it() -> None:
    """However many scrapes arrive in one turn of the loop: one render per format, one snapshot each,
    and a scrape does not take a curl's render (it has no snapshot). A waiter cancelled (its client
    went away) does not cancel the render for the others. Then, with no reuse time, a new render."""
    from consumer.shared_renders import SharedRenders

    metrics = populated()
    observer = Observer(metrics)
    renderer = CountingRenderer()
    renders = SharedRenders(renderer, observer)
    requests = [renders.get(open_metrics, scrape) for open_metrics in (True, False) for scrape in (False, True)
                for _ in range(10)]
    tasks = [asyncio.ensure_future(request) for request in requests]
    tasks[-1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[-1], asyncio.CancelledError)
    bodies = {(render.body, render.snapshot) for render in done[:-1]}
    assert renderer.renders == 4 and len(bodies) == 4 and observer.started == 2
    assert {snapshot for _, snapshot in bodies} == {None, 1, 2}
    later = await renders.get(True, True)
    assert (renderer.renders, later.snapshot) == (5, 3)


async def test_a_curl_shares_a_pending_scrapes_render() -> None:
    from consumer.shared_renders import SharedRenders

    renderer = CountingRenderer()
    renders = SharedRenders(renderer, Observer(populated()))
    scrape, curl = await asyncio.gather(renders.get(False, True), renders.get(False, False))
    assert scrape is curl and renderer.renders == 1


async def test_concurrent_scrapes_share_one_render_and_each_completes_its_snapshot() -> None:
    server, metrics, observer = await serving(HttpSettings(render_reuse_seconds=30), observer=True)
    assert observer is not None
    try:
        answers = await asyncio.gather(*(get(server.port, SCRAPE) for _ in range(12)))
        metrics.consumer.owned_partitions.set(99)  # counted after the render: not in a shared answer
        later = await get(server.port, SCRAPE)
        curl = await get(server.port, {})
        om = await get(server.port, {**SCRAPE, "Accept": "application/openmetrics-text"})
    finally:
        await server.stop()
    bodies = {body for _, _, body in [*answers, later, curl]}
    assert len(bodies) == 1 and b"acs_consumer_owned_partitions 1.0" in bodies.pop()
    assert observer.started == 2  # one render per format
    assert observer.completed == [1] * 13 + [2]  # each scrape completes the snapshot of its render (not the curl)
    assert om[0] == 200


async def test_a_curls_render_is_not_a_scrapes() -> None:
    """A render made for a curl took no snapshot: the next scrape renders anew, after its snapshot."""
    server, _, observer = await serving(HttpSettings(render_reuse_seconds=30), observer=True)
    assert observer is not None
    try:
        await get(server.port, {})
        status, _, body = await get(server.port, SCRAPE)
    finally:
        await server.stop()
    assert status == 200 and b"acs_consumer_owned_partitions 1.0" in body
    assert (observer.started, observer.completed) == (1, [1])


async def test_after_reuse_seconds_a_scrape_renders_again() -> None:
    server, _, observer = await serving(HttpSettings(render_reuse_seconds=0.2), observer=True)
    assert observer is not None
    try:
        await get(server.port, SCRAPE)
        await asyncio.sleep(0.3)
        await get(server.port, SCRAPE)
    finally:
        await server.stop()
    assert observer.completed == [1, 2]


# --- connection limits ---------------------------------------------------------------------------

@asynccontextmanager
async def partial_requests(port: int, count: int) -> AsyncIterator[list[socket.socket]]:
    """`count` connections that each send half a request and stop; closed at the end."""
    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        return sock

    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(await asyncio.to_thread(connect))
        await asyncio.sleep(0.3)  # the server has accepted (or refused) them all
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _healthz(port: int, source: str = "127.0.0.1") -> float:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    return time.monotonic() - started


async def test_partial_requests_are_closed_after_the_header_timeout_and_healthz_answers() -> None:
    settings = HttpSettings(header_timeout_seconds=1, max_connections=40, max_connections_per_client=100)
    server, metrics, _ = await serving(settings)
    try:
        async with partial_requests(server.port, 100) as sockets:
            assert server.limits.open <= 40
            assert refused(metrics, "connection_limit") >= 60  # closed unread, at once
            # the held ones are closed at the deadline; a new connection is served then
            closed = await asyncio.gather(*(asyncio.to_thread(_closed_by_peer, s, 3) for s in sockets))
            assert all(closed)
            assert refused(metrics, "header_timeout") >= 1
            assert await asyncio.to_thread(_healthz, server.port) < 1
    finally:
        await server.stop()


async def test_one_client_cannot_take_every_connection() -> None:
    """Past `max_connections_per_client` from one address, its connections are refused; another
    address (kubelet's, Prometheus') is still served, long before the header deadline."""
    settings = HttpSettings(header_timeout_seconds=30, max_connections=40, max_connections_per_client=5)
    server, metrics, _ = await serving(settings)
    try:
        async with partial_requests(server.port, 10):
            assert server.limits.open == 5
            assert refused(metrics, "connection_limit") == 5
            assert await asyncio.to_thread(_healthz, server.port, "127.0.0.2") < 1
        await asyncio.sleep(0.3)
        assert server.limits.open == 0  # closed connections give their slots back
        assert await asyncio.to_thread(_healthz, server.port) < 1
    finally:
        await server.stop()


def test_the_limits_hold_on_uvloop_too() -> None:
    """`run --loop uvloop`: its transports are not asyncio.Transport subclasses."""
    import uvloop  # .ci/setup installs the uvloop extra; a missing uvloop fails here

    async def scenario() -> None:
        settings = HttpSettings(header_timeout_seconds=0.5, max_connections=40, max_connections_per_client=3)
        server, metrics, _ = await serving(settings)
        try:
            async with partial_requests(server.port, 5) as sockets:
                closed = await asyncio.gather(*(asyncio.to_thread(_closed_by_peer, s, 3) for s in sockets))
                assert all(closed)
                assert (refused(metrics, "connection_limit"), refused(metrics, "header_timeout")) == (2, 3)
                assert await asyncio.to_thread(_healthz, server.port) < 1
        finally:
            await server.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_a_response_its_client_does_not_read_is_dropped_after_the_send_timeout() -> None:
    """A 60-byte request for /metrics whose answer is never read held the whole exposition in the
    transport's buffer for good: now only for `send_timeout_seconds`. (The registry with every family
    at the budget: an exposition of ~11 MB, more than the kernel's socket buffers take.)"""
    from bench.bench_render import everything

    metrics = everything(2000)
    server = HttpServer(metrics, Health(), "127.0.0.1", 0, settings=HttpSettings(send_timeout_seconds=1))
    await server.start()

    def never_read() -> float:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            started = time.monotonic()
            while True:  # wait until the server gives up, without reading more than a trickle
                time.sleep(0.2)
                if server.limits.open == 0 or time.monotonic() - started > 10:
                    return time.monotonic() - started

    try:
        elapsed = await asyncio.to_thread(never_read)
        assert await asyncio.to_thread(_healthz, server.port) < 1
    finally:
        await server.stop()
    assert elapsed < 5, elapsed
    assert refused(metrics, "send_timeout") == 1


async def test_a_slowly_sent_request_is_closed_at_the_deadline_of_its_first_bytes() -> None:
    """Bytes that keep coming do not extend the deadline (a slowloris)."""
    server, metrics, _ = await serving(HttpSettings(header_timeout_seconds=1))

    def slowloris() -> float:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            try:
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 100:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
            except OSError:
                pass
            assert _closed_by_peer(sock, 3)
        return time.monotonic() - started

    try:
        elapsed = await asyncio.to_thread(slowloris)
    finally:
        await server.stop()
    assert 0.9 < elapsed < 2.5
    assert refused(metrics, "header_timeout") == 1


async def test_keep_alive_serves_requests_and_an_idle_connection_closes_after_the_keepalive_timeout() -> None:
    server, metrics, _ = await serving(HttpSettings(header_timeout_seconds=0.5, keepalive_timeout_seconds=1.5))

    def keep_alive() -> float:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            for _ in range(2):  # idle longer than the header timeout between requests: still served
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                time.sleep(0.8)
            idle_from = time.monotonic()
            assert _closed_by_peer(sock, 5)
            return time.monotonic() - idle_from

    try:
        idle = await asyncio.to_thread(keep_alive)
    finally:
        await server.stop()
    assert 0.3 < idle < 2.5  # 1.5 s after the last response
    assert refused(metrics, "header_timeout") == 0


# --- bearer token --------------------------------------------------------------------------------

def _write(path: Path, token: str, mtime_ns: int) -> None:
    path.write_text(token + "\n")
    os.utime(path, ns=(mtime_ns, mtime_ns))


async def test_the_bearer_token_is_required_on_metrics_only_and_re_read_when_it_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    _write(token_file, "first-token", 1_000_000_000)
    server, metrics, observer = await serving(HttpSettings(bearer_token_path=str(token_file), render_reuse_seconds=1e-9),
                                              observer=True)
    assert observer is not None
    port = server.port

    async def status(headers: dict[str, str]) -> int:
        return (await get(port, {**SCRAPE, **headers}))[0]

    try:
        assert await status({}) == 401
        assert await status({"Authorization": "Bearer wrong"}) == 401
        assert await status({"Authorization": "Basic Zmlyc3QtdG9rZW4="}) == 401
        assert observer.completed == [] and observer.started == 0  # refused scrapes move nothing
        assert await status({"Authorization": "Bearer first-token"}) == 200
        assert await status({"Authorization": "bearer first-token"}) == 200
        assert observer.completed == [1, 2]
        assert await asyncio.to_thread(_healthz, port) < 1  # probes stay open

        _write(token_file, "second-token", 2_000_000_000)  # rotated: no restart
        assert await status({"Authorization": "Bearer first-token"}) == 401
        assert await status({"Authorization": "Bearer second-token"}) == 200

        _write(token_file, "", 3_000_000_000)  # a broken rotation keeps the token in force
        assert await status({"Authorization": "Bearer second-token"}) == 200
    finally:
        await server.stop()
    assert refused(metrics, "unauthorized") == 4


def test_a_missing_or_empty_token_file_stops_the_start(tmp_path: Path) -> None:
    from consumer.scrape_auth import TokenFileError

    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (tmp_path / "missing", empty):
        with pytest.raises(TokenFileError, match="bearer_token_path"):
            HttpServer(Metrics(Buckets(), "t"), Health(), "127.0.0.1", 0, settings=HttpSettings(bearer_token_path=str(path)))


def test_run_refuses_to_start_without_its_token_file(tmp_path: Path) -> None:
    """`acs-sms-consumer run` with `http.bearer_token_path` naming no file: exit 2 before anything
    starts, the key and the path named."""
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("eventhub:\n  fully_qualified_namespace: x.servicebus.windows.net\n  name: hub\n"
                      "  consumer_group: acs-sms-consumer\n"
                      "checkpoint_store:\n  account_url: https://x.blob.core.windows.net\n"
                      f"http:\n  bearer_token_path: {tmp_path / 'missing'}\n")
    proc = subprocess.run([sys.executable, "-m", "consumer", "run", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"http.bearer_token_path {tmp_path / 'missing'}: cannot be read" in proc.stderr


def test_odd_authorization_headers_are_refused_not_raised(tmp_path: Path) -> None:
    from consumer.scrape_auth import BearerToken

    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    token = BearerToken(token_file)
    assert token.authorizes("Bearer abc") and token.authorizes("bearer  abc ")
    for header in (None, "", "Bearer", "Bearer \udcff\ud800", "Basic abc", "abc", "Bearer abcd", "Bearer ab"):
        assert not token.authorizes(header), header
