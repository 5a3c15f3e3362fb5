"""Consumer processes for the end-to-end tests: the settings they share (short load-balancing
intervals and ownership expiry, so takeovers are quick), starting one or several `acs-sms-consumer
run` processes on one hub and one Azurite, and waiting on them (conditions, balanced ownership)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acs_sms_devtools.traffic import generate_corpus
from tests.e2e.support import ConsumerProcess, free_port, owned_partitions, write_config

LB_INTERVAL = 1.0
CHECKPOINT_INTERVAL = 1.0
EVERY_EVENTS = 100
MAX_BATCH = 50
RATE = 20  # events per second per partition
SCRAPE_INTERVAL = 0.5
BODIES = generate_corpus(2000, records_per_body=5, seed=21)


def start_consumer(endpoint: Any, storage_connection_string: str, container: str, tmp_path: Path,
                   name: str = "consumer", expiry: float = 5.0, **overrides: Any) -> ConsumerProcess:
    """`run` on a free port with the settings above (keys as in `write_config`; `overrides` win)."""
    port = free_port()
    settings: dict[str, Any] = {
        "eventhub__load_balancing_interval_seconds": LB_INTERVAL,
        "eventhub__partition_ownership_expiration_interval_seconds": expiry,
        "eventhub__max_batch_size": MAX_BATCH,
        "eventhub__prefetch": 2 * MAX_BATCH,
        "checkpoint__interval_seconds": CHECKPOINT_INTERVAL,
        "checkpoint__every_events": EVERY_EVENTS,
        **overrides,
    }
    config = write_config(tmp_path / f"{name}.yaml", endpoint.connection_string, endpoint.hub.name,
                          storage_connection_string, container, port, **settings)
    return ConsumerProcess(config, port, tmp_path / f"{name}.log").start()


def start_replicas(count: int, endpoint: Any, storage: Any, container: str, tmp_path: Path, expiry: float,
                   **overrides: Any) -> list[ConsumerProcess]:
    return [start_consumer(endpoint, storage.connection_string, container, tmp_path, f"replica{index}", expiry,
                           **overrides) for index in range(count)]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, replicas: list[ConsumerProcess],
             details: Callable[[], str] | None = None) -> float:
    """Poll until `condition()`; returns the monotonic time it first held. On a timeout the message
    holds `details()` and the replicas' last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.process.poll() is not None:
                raise AssertionError(f"replica exited ({replica.process.returncode}) waiting for {what}:\n"
                                     + replica.logs()[-3000:])
        try:
            if condition():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.1)
    tails = "\n---\n".join(replica.logs()[-2000:] for replica in replicas)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{details() if details else ''}\n{tails}")


def wait_balanced(replicas: list[ConsumerProcess], partitions: int, stable_for: float, timeout: float) -> list[set[str]]:
    """Wait until the replicas own every partition exactly once, unchanged for `stable_for` seconds."""
    deadline = time.monotonic() + timeout
    last: list[set[str]] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        owned = [owned_partitions(replica) for replica in replicas]
        exact = sum(len(o) for o in owned) == partitions and len(set().union(*owned)) == partitions
        if owned != last or not exact:
            last, since = owned, time.monotonic()
        elif time.monotonic() - since >= stable_for:
            return owned
        time.sleep(0.2)
    raise AssertionError(f"ownership did not settle: {last}")
