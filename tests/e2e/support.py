"""Helpers for end-to-end tests: run `acs-sms-consumer run` as a subprocess and scrape it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, eventhub_connection_string: str, hub: str, storage_connection_string: str,
                 container: str, port: int, **overrides: Any) -> Path:
    config: dict[str, Any] = {
        "eventhub": {
            "connection_string": eventhub_connection_string,
            "name": hub,
            "initial_position": "earliest",
            "max_wait_time_seconds": 0.5,
            "load_balancing_interval_seconds": 1,
            "partition_ownership_expiration_interval_seconds": 5,
        },
        "checkpoint_store": {"connection_string": storage_connection_string, "container": container},
        "checkpoint": {"interval_seconds": 1, "every_events": 100},
        "deadletter": {"container": f"{container}-dl"},
        "http": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "INFO", "progress_interval_seconds": 1},
        "shutdown_timeout_seconds": 15,
    }
    for dotted, value in overrides.items():
        target = config
        *parents, last = dotted.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class ConsumerProcess:
    """A running `acs-sms-consumer run` with its logs captured to a file."""

    config: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> ConsumerProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", "--config", str(self.config)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample as {(name, sorted labels): value}."""
        _, body = self.get("/metrics")
        samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        try:
            samples = self.metrics()
        except (urllib.error.URLError, ConnectionError, OSError):
            return float("nan")
        want = set(labels.items())
        return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"consumer exited ({self.process.returncode}) while waiting for {what}:\n{self.logs()[-4000:]}")
            try:
                if condition():
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n{self.logs()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
