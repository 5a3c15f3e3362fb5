"""Helpers for end-to-end tests: run `acs-sms-consumer run` as a subprocess and scrape it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from azure.eventhub import EventData, EventHubProducerClient
from azure.storage.blob import BlobServiceClient

from acs_sms_devtools.scrape import Samples, free_port, parse, total  # noqa: F401 - free_port: for the tests
from acs_sms_devtools.scrape import get as http_get
from tests.e2e.slices import Slices


#: The lame duck's longest wait for a scrape of the final counts, in the tests' configurations.
FINAL_SCRAPE_WAIT = 3.0


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
        # Checkpoints are scrape-aligned: a test that counts on them scrapes (`Scraper`, or its own
        # polling of /metrics). On SIGTERM the lame duck waits this long for a scrape of the last counts.
        "shutdown_final_scrape_wait_seconds": FINAL_SCRAPE_WAIT,
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

    def get(self, path: str, timeout: float = 5, scrape: bool = True) -> tuple[int, bytes]:
        """GET `path`; /metrics as Prometheus scrapes it, or with `scrape=False` as a `curl` does
        (`acs_sms_devtools.scrape.get`)."""
        return http_get(self.url(path), timeout, scrape)

    def metrics(self) -> Samples:
        """Every sample as {(name, sorted labels): value}."""
        _, body = self.get("/metrics")
        return parse(body.decode())

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        try:
            samples = self.metrics()
        except (urllib.error.URLError, ConnectionError, OSError):
            return float("nan")
        return total(samples, name, **labels)

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


# --- reliability helpers (scale-out, failover, faults) ------------------------------------------


def log_lines(process: ConsumerProcess) -> list[dict[str, Any]]:
    """The process's JSON log lines (non-JSON lines skipped)."""
    import json

    lines = []
    for line in process.logs().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def owned_partitions(process: ConsumerProcess) -> set[str]:
    """Partitions this replica holds now, from its "partition claimed"/"partition released" log lines."""
    owned: set[str] = set()
    for line in log_lines(process):
        if line.get("message") == "partition claimed":
            owned.add(line["partition"])
        elif line.get("message") == "partition released":
            owned.discard(line["partition"])
    return owned


def released_at_shutdown(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The "partition released" log line of each partition after "shutting down" (the last one)."""
    shutting = next(i for i, line in enumerate(lines) if line.get("message") == "shutting down")
    return {line["partition"]: line for line in lines[shutting:] if line.get("message") == "partition released"}


def events_by_partition(source: ConsumerProcess | Samples) -> dict[str, float]:
    """`acs_consumer_events_total` per partition (of a process, scraped now, or of a scrape)."""
    samples = source.metrics() if isinstance(source, ConsumerProcess) else source
    counts: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "acs_consumer_events_total":
            partition = dict(labels).get("partition", "")
            counts[partition] = counts.get(partition, 0) + value
    return counts


def checkpoint_blobs(storage_connection_string: str, container: str, endpoint: Any) -> dict[str, int]:
    """The sequence number each partition's checkpoint blob names (the SDK's layout), where there is one."""
    return {partition: int(metadata["sequencenumber"])
            for partition, metadata in _partition_blobs(storage_connection_string, container, endpoint, "checkpoint").items()}


def ownership_blobs(storage_connection_string: str, container: str, endpoint: Any) -> dict[str, str]:
    """The owner id of each partition's ownership blob: "" once released (the SDK writes an empty owner
    id, which storage gives back as no value)."""
    return {partition: metadata.get("ownerid") or ""
            for partition, metadata in _partition_blobs(storage_connection_string, container, endpoint, "ownership").items()}


def _partition_blobs(storage_connection_string: str, container: str, endpoint: Any, kind: str) -> dict[str, dict[str, str]]:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    try:
        prefix = f"{endpoint.fully_qualified_namespace}/{endpoint.hub.name}/$default/{kind}/".lower()
        return {blob.name.rsplit("/", 1)[-1]: blob.metadata
                for blob in service.get_container_client(container).list_blobs(name_starts_with=prefix,
                                                                               include=["metadata"])}
    finally:
        service.close()


def scrape_once_counted(process: ConsumerProcess, expected: dict[str, int], timeout: float) -> Samples:
    """Scrape `process` until a scrape shows it has counted `expected` events in each of those
    partitions; returns that scrape. In a hub that does not grow meanwhile (`Stream.paused`) it is
    then exact, and (checkpoints being scrape-aligned) a checkpoint or a partition's final checkpoint
    written from now on may name every event the process has counted."""
    deadline = time.monotonic() + timeout
    while True:
        samples = process.metrics()
        counts = events_by_partition(samples)
        if all(counts.get(p, 0) >= n for p, n in expected.items()):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s the process had counted {counts}, not {expected}")
        time.sleep(0.01)


def kill_past_checkpoints(process: ConsumerProcess, stream: Stream, partitions: set[str],
                          read_checkpoints: Callable[[], dict[str, int]], timeout: float = 10,
                          attempts: int = 5) -> tuple[Samples, dict[str, int]]:
    """SIGKILL `process` at a moment when each of `partitions` has counted events that its checkpoint
    does not name yet, right after a scrape that shows every event the hub holds there counted (the
    stream held still, so the scrape is exact). Returns (that scrape, the checkpoints read then).

    Checkpoints are scrape-aligned, so the scrape lets the next due checkpoint name everything counted;
    a checkpoint written between the scrape and the kill would leave nothing to replay. So the process
    is stopped (SIGSTOP) while its checkpoint blobs are read: if one already names every counted event,
    it is let go on (SIGCONT), counts more of the stream, and the next attempt comes. The caller reads
    the blobs again after the kill (a write in flight at the SIGSTOP could still land)."""
    for _ in range(attempts):
        with stream.paused() as held:
            samples = scrape_once_counted(process, {p: held[p] for p in partitions}, timeout)
            process.process.send_signal(signal.SIGSTOP)
            checkpoints = read_checkpoints()
            counts = events_by_partition(samples)
            if all(checkpoints.get(p, -1) + 1 < counts.get(p, 0) for p in partitions):
                process.process.send_signal(signal.SIGKILL)
                process.process.wait()
                process._log.close()
                return samples, checkpoints
            process.process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + timeout
        while not all(events_by_partition(process).get(p, 0) > counts.get(p, 0) for p in partitions):
            if time.monotonic() > deadline:
                raise AssertionError(f"the process counted nothing more in {timeout} s after {counts}")
            time.sleep(0.05)
    raise AssertionError(f"in {attempts} attempts a checkpoint always named every counted event")


def checkpoints(samples: Samples, outcome: str) -> dict[str, float]:
    """`acs_consumer_checkpoints_total{outcome}` per partition."""
    found: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "acs_consumer_checkpoints_total" and dict(labels).get("outcome") == outcome:
            found[dict(labels)["partition"]] = value
    return found


class Scraper:
    """Scrapes a consumer's /metrics every `interval` seconds in a thread, as Prometheus does, until
    `stop()`; keeps the last complete scrape. Checkpoints are scrape-aligned: a test that needs them to
    move without polling /metrics itself runs one of these."""

    def __init__(self, process: ConsumerProcess, interval: float = 0.5) -> None:
        import threading

        self.process = process
        self.interval = interval
        self.scrapes = 0
        self.last: Samples | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"scraper-{process.port}", daemon=True)

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = self.process.metrics()
                self.scrapes += 1
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Stream:
    """A steady stream of events into every partition of a local endpoint (stored directly, no AMQP
    producer), `per_second` events per partition, in ticks of `tick` seconds, until `stop()`.
    The endpoint's own event counts are the ground truth of what was published. `paused()` holds it
    still (the ticks go on, publishing nothing) for a moment that must see a hub that does not grow.
    `bodies`: a corpus to cycle through, or `Slices` (tests/e2e/slices.py), which makes every event
    identifiable by partition and phase."""

    def __init__(self, endpoint: Any, per_second: float, bodies: list[bytes] | Slices, tick: float = 0.1) -> None:
        import threading

        self.endpoint = endpoint
        self.per_tick = max(1, round(per_second * tick))
        self.tick = tick
        self.slices = bodies if isinstance(bodies, Slices) else None
        self.bodies = [] if isinstance(bodies, Slices) else bodies
        self._next = 0
        self.records = 0  # records in the bodies published so far
        self._records_per_body = [_records_in(body) for body in self.bodies]
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._tick_lock = threading.Lock()  # held while a tick publishes
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> Stream:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            with self._tick_lock:
                if not self._paused.is_set():
                    try:
                        self._publish_tick()
                    except BaseException as error:  # raised again by stop()
                        self.error = error
                        return
            next_tick += self.tick
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def _publish_tick(self) -> None:
        if self.slices is not None:
            for partition in self.endpoint.partition_ids:
                self.endpoint.publish(partition, self.slices.bodies(partition, self.per_tick))
                self.records += self.per_tick
            return
        for partition in self.endpoint.partition_ids:
            indexes = [(self._next + i) % len(self.bodies) for i in range(self.per_tick)]
            chunk = [self.bodies[i] for i in indexes]
            self.records += sum(self._records_per_body[i] for i in indexes)
            self._next += self.per_tick
            self.endpoint.publish(partition, chunk)

    @contextmanager
    def paused(self) -> Iterator[dict[str, int]]:
        """Publish nothing inside the block (a tick under way finishes first); yields the events per
        partition the hub holds, which stay so until the block ends."""
        self._paused.set()
        with self._tick_lock:
            counts = self.endpoint.event_counts()
        try:
            yield counts
        finally:
            self._paused.clear()

    def stop(self) -> dict[str, int]:
        """Stop publishing; returns the events per partition the hub holds."""
        self._stop.set()
        self._thread.join(10)
        if self.error is not None:
            raise AssertionError(f"the stream failed: {self.error!r}") from self.error
        return self.endpoint.event_counts()

    def markers(self) -> dict[str, int]:
        """After `stop()`: one last event per partition in the slices' phase "end" (a partition's
        owner has counted everything before it once it counts its marker). Returns the events per
        partition the hub holds."""
        assert self.slices is not None and self._stop.is_set()
        for partition in self.endpoint.partition_ids:
            self.endpoint.publish(partition, self.slices.bodies(partition, 1, phase="end"))
        return self.endpoint.event_counts()


def _records_in(body: bytes) -> int:
    import json

    return len(json.loads(body)["records"])


def publish(connection_string: str, bodies: list[bytes], partitions: list[str]) -> dict[str, int]:
    """Send each body as one event, round-robin over partitions; returns events per partition."""
    sent: dict[str, int] = {}
    with EventHubProducerClient.from_connection_string(connection_string) as producer:
        for index, body in enumerate(bodies):
            partition = partitions[index % len(partitions)]
            batch = producer.create_batch(partition_id=partition)
            batch.add(EventData(body))
            producer.send_batch(batch)
            sent[partition] = sent.get(partition, 0) + 1
    return sent
