"""Helpers of the tests that run `Service.serve` in the test process (tests/test_app_lifecycle.py,
tests/e2e/test_isolation.py): its HTTP endpoints, and waiting on a condition from inside the loop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from acs_sms_devtools.scrape import get as http_get
from consumer.app import Service


def get(service: Service, path: str) -> tuple[int, bytes]:
    """Status and body of GET `path` on the service's HTTP port (error statuses included); /metrics as
    Prometheus scrapes it (a scrape: it moves the checkpoints)."""
    return http_get(f"http://127.0.0.1:{service.http_port}{path}")


def readyz(service: Service) -> tuple[int, dict]:
    status, body = get(service, "/readyz")
    return status, json.loads(body)


async def until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `condition()` in a thread (it may do blocking I/O against the service) until it holds; an
    OSError counts as not yet (the service is not serving yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await asyncio.to_thread(condition):
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(interval)
