"""Faults under a steady stream: blob storage away for 60 s (refused, then black-holed, through a
test-controlled TCP proxy in front of Azurite), Event Hubs connections dropped and the endpoint
restarted, a partition receiver stolen by a higher owner level. One `acs-sms-consumer run` process;
per-event accounting against the hub's own counts.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any

from azure.eventhub import EventHubConsumerClient
from azure.storage.blob import BlobServiceClient

from consumer.devtools.azurite import development_connection_string
from tests.e2e.proxy import TcpProxy
from tests.e2e.support import (
    ConsumerProcess,
    Stream,
    events_by_partition,
    free_port,
    log_lines,
    owned_partitions,
    write_config,
)
from tests.e2e.test_failover import BODIES, CHECKPOINT_INTERVAL, EVERY_EVENTS, LB_INTERVAL, MAX_BATCH, RATE, wait_for

OUTAGE_SECONDS = 60.0
READY_MAX_AGE = 10.0


def start_consumer(endpoint: Any, storage_connection_string: str, container: str, tmp_path: Path,
                   name: str = "consumer", **overrides: Any) -> ConsumerProcess:
    port = free_port()
    settings: dict[str, Any] = {
        "eventhub__load_balancing_interval_seconds": LB_INTERVAL,
        "eventhub__partition_ownership_expiration_interval_seconds": 5,
        "eventhub__max_batch_size": MAX_BATCH,
        "eventhub__prefetch": 2 * MAX_BATCH,
        "checkpoint__interval_seconds": CHECKPOINT_INTERVAL,
        "checkpoint__every_events": EVERY_EVENTS,
        **overrides,
    }
    config = write_config(tmp_path / f"{name}.yaml", endpoint.connection_string, endpoint.hub.name,
                          storage_connection_string, container, port, **settings)
    return ConsumerProcess(config, port, tmp_path / f"{name}.log").start()


def checkpoints(samples: dict, outcome: str) -> dict[str, float]:  # type: ignore[type-arg]
    found: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == "acs_consumer_checkpoints_total" and dict(labels).get("outcome") == outcome:
            found[dict(labels)["partition"]] = value
    return found


def checkpoint_blobs(storage_connection_string: str, container: str, endpoint: Any) -> dict[str, int]:
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    try:
        prefix = f"{endpoint.fully_qualified_namespace}/{endpoint.hub.name}/$default/checkpoint/".lower()
        return {blob.name.rsplit("/", 1)[-1]: int(blob.metadata["sequencenumber"])
                for blob in service.get_container_client(container).list_blobs(name_starts_with=prefix,
                                                                               include=["metadata"])}
    finally:
        service.close()


def test_storage_outage_of_60_s_keeps_counting_and_checkpoints_catch_up(eventhubs, azurite, blob_container,
                                                                        tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", azurite.port).start()
    consumer = start_consumer(eventhubs, development_connection_string("127.0.0.1", proxy.port), blob_container,
                              tmp_path, readiness_checkpoint_store_max_age_seconds=READY_MAX_AGE)
    stream = None
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 30, "ready")
        stream = Stream(eventhubs, RATE, BODIES).start()
        consumer.wait_until(lambda: all(v > 0 for v in checkpoints(consumer.metrics(), "ok").values())
                            and len(checkpoints(consumer.metrics(), "ok")) == 4, 20, "first checkpoints")

        # The outage: refused for the first half (storage down), black-holed for the second (network
        # partition: requests hang until the client's own timeouts).
        timeline: list[tuple[float, int, float, float, int]] = []  # t, /readyz, counted, errors, published
        started = time.monotonic()
        proxy.mode = "refuse"
        halves: dict[str, tuple[float, int]] = {}
        while (elapsed := time.monotonic() - started) < OUTAGE_SECONDS:
            if elapsed >= OUTAGE_SECONDS / 2 and proxy.mode == "refuse":
                halves["refuse"] = (consumer.total("acs_consumer_events_total"), eventhubs.event_count())
                proxy.mode = "blackhole"
            assert consumer.process.poll() is None, consumer.logs()[-3000:]
            samples = consumer.metrics()
            timeline.append((elapsed, consumer.get("/readyz")[0], sum(events_by_partition(samples).values()),
                             sum(checkpoints(samples, "error").values()), eventhubs.event_count()))
            time.sleep(0.5)
        halves["blackhole"] = (consumer.total("acs_consumer_events_total"), eventhubs.event_count())
        at_return = consumer.metrics()
        returned = time.monotonic()
        proxy.mode = "pass"

        ok_at_return = checkpoints(at_return, "ok")
        counted_at_return = events_by_partition(at_return)
        caught: dict[str, float] = {}

        def checkpoints_caught_up() -> bool:
            samples = consumer.metrics()
            now = time.monotonic() - returned
            for partition, value in checkpoints(samples, "ok").items():
                if value > ok_at_return.get(partition, 0) and partition not in caught:
                    caught[partition] = now
            return len(caught) == 4

        consumer.wait_until(checkpoints_caught_up, 30, "checkpoints after storage returned")
        blobs = checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
        ready_again = consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 30, "ready again")
        ready_again_after = time.monotonic() - returned
        published = stream.stop()
        stream = None
        consumer.wait_until(lambda: all(events_by_partition(consumer).get(p, 0) >= n for p, n in published.items()),
                            30, "catch-up")
        consumer.wait_until(lambda: checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
                            == {p: n - 1 for p, n in published.items()}, 20, "checkpoints at the end")
        time.sleep(1)
        final = events_by_partition(consumer)
        assert consumer.get("/readyz")[0] == 200
    finally:
        if stream is not None:
            stream.stop()
        code = consumer.stop(signal.SIGTERM)
        proxy.close()

    not_ready = [t for t, status, *_ in timeline if status != 200]
    errors = timeline[-1][3]
    lag_max = max(published_ - counted for _, _, counted, _, published_ in timeline)
    print(f"\nstorage outage {OUTAGE_SECONDS:.0f} s (refused, then black-holed): events counted during it "
          f"{timeline[-1][2] - timeline[0][2]:.0f} (published {timeline[-1][4] - timeline[0][4]}), largest lag "
          f"{lag_max:.0f} events, checkpoint errors {errors:.0f}; /readyz 503 from {min(not_ready, default=-1):.1f} s "
          f"to the end of the outage ({sum(1 for *_, in timeline)} samples), 200 again {ready_again_after:.2f} s "
          f"after storage returned; first checkpoint per partition after return {caught} s; "
          f"halves (counted, published) {halves}")
    assert code == 0
    # Counting went on through both halves: within a few seconds of traffic of what was published.
    slack = 4 * RATE * 4
    for half, (counted_, published_) in halves.items():
        assert counted_ >= published_ - slack, (half, counted_, published_)
    assert lag_max <= slack, lag_max
    assert errors > 0
    # Readiness: ready before, not ready once storage was silent for longer than the limit (the probe
    # and checkpoint attempts decide within a few seconds more), ready again once it answers.
    assert timeline[0][1] == 200
    assert not_ready and READY_MAX_AGE <= min(not_ready) <= READY_MAX_AGE + 5, not_ready[:3]
    assert all(status != 200 for t, status, *_ in timeline if t >= READY_MAX_AGE + 5)
    assert ready_again_after < 2 * CHECKPOINT_INTERVAL + 5
    # Checkpoints caught up: every partition wrote one within a few seconds of storage returning,
    # naming at least what was counted when it came back; at the end they name the last event.
    assert max(caught.values()) < 2 * CHECKPOINT_INTERVAL + 5, caught
    assert all(blobs[p] >= counted_at_return[p] - 1 for p in counted_at_return), (blobs, counted_at_return)
    # Nothing lost; one replica, nothing replayed either.
    assert final == {p: float(n) for p, n in published.items()}, (final, published)
