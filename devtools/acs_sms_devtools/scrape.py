"""Reading a running consumer from outside: a free local port to give it, and its /metrics as samples.

Shared by the soak run (`bench/soak.py`) and the end-to-end tests (`tests/e2e/support.py`).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from consumer.http import SCRAPE_TIMEOUT_HEADER

#: Every sample of a scrape: {(name, sorted (label, value) pairs): value}.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def parse(text: str) -> Samples:
    """The samples of a Prometheus text exposition."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def prometheus_headers(timeout: float) -> dict[str, str]:
    """What Prometheus' scrape code sends with every scrape: its timeout. The consumer counts only such
    requests as the scrapes its checkpoints wait for (`checkpoint.scrapers`, consumer/http.py)."""
    return {SCRAPE_TIMEOUT_HEADER: f"{timeout:g}"}


def get(url: str, timeout: float = 5, scrape: bool = True) -> tuple[int, bytes]:
    """Status and body of GET `url` (error statuses included). A /metrics URL is read as Prometheus
    scrapes it (a scrape: it moves the checkpoints), or with `scrape=False` as a `curl` reads it
    (no scrape-timeout header: it moves nothing)."""
    headers = prometheus_headers(timeout) if scrape and url.endswith("/metrics") else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(url: str, timeout: float = 10) -> Samples:
    """GET `url` (a /metrics endpoint) as Prometheus does, a scrape, and parse it."""
    request = urllib.request.Request(url, headers=prometheus_headers(timeout))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return parse(response.read().decode())


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(value for (n, pairs), value in samples.items() if n == name and want <= set(pairs))
