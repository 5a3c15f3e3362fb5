"""Per-event isolation through the real receive path: `Service.serve` in this process against the
local Event Hubs endpoint and Azurite, with a pipeline that has a bug one body reaches.

The bug is a `Pipeline` subclass (there is no known input that makes the real pipeline raise, and the
production code has no hook to fake one), so the service runs in this process, not as a subprocess:
everything around the pipeline is the real `run` path (SDK receive loop, checkpoints in Azurite, the
dead-letter writer, /metrics over HTTP).

Asserted: the event that raised is counted (`acs_consumer_decode_errors_total{reason="internal"}`),
logged with partition, sequence number and exception type but not the body or the exception's
message, dead-lettered byte for byte with reason `internal`; the events after it are processed, the
checkpoint passes it, the lag gauge keeps being set, and the partition goes on with later events.
And a partition whose body never finishes (held on the worker thread) is named by /readyz after
`readiness_partition_stalled_max_seconds` while /healthz still answers, and is ready again once the
body is done.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from azure.storage.blob import BlobServiceClient

from consumer.app import Service
from consumer.config import Settings
from consumer.logs import JsonFormatter
from consumer.pipeline import Pipeline
from tests.e2e.support import checkpoint_blobs, parse, total
from tests.in_process import get, readyz, until

SECRET = "+15551234567"
GOOD = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, "UsageType": "SMS"}}]}'
BOOM = (b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, '
        b'"UsageType": "boom", "To": "' + SECRET.encode() + b'"}}]}')


class BuggyPipeline(Pipeline):
    """Raises on one body after counting its event, with a message that quotes the body."""

    def process(self, body, now, context=None):
        if b'"boom"' in body:
            self.metrics.events.inc((context.partition,))
            raise KeyError(body.decode())
        return super().process(body, now, context)


def settings_for(eventhubs, azurite, container: str) -> Settings:
    return Settings.model_validate({
        "eventhub": {"connection_string": eventhubs.connection_string, "name": eventhubs.hub.name,
                     "initial_position": "earliest", "max_wait_time_seconds": 0.2,
                     "load_balancing_interval_seconds": 1, "partition_ownership_expiration_interval_seconds": 5},
        "checkpoint_store": {"connection_string": azurite.connection_string, "container": container},
        "checkpoint": {"interval_seconds": 0.5, "every_events": 1},
        "deadletter": {"container": f"{container}-dl"},
        "http": {"host": "127.0.0.1", "port": 0},
        "shutdown_timeout_seconds": 10,
    })


def scrape(service: Service) -> dict:
    return parse(get(service, "/metrics")[1].decode())


def test_an_event_that_makes_the_pipeline_raise_is_isolated(eventhubs, azurite, blob_container, caplog):
    service = Service(settings_for(eventhubs, azurite, blob_container))
    service.pipeline.__class__ = BuggyPipeline
    ckpt = lambda: checkpoint_blobs(azurite.connection_string, blob_container, eventhubs).get("0")  # noqa: E731

    async def main() -> int:
        serving = asyncio.create_task(service.serve())
        await until(lambda: service.http_port is not None, 20, "http")
        eventhubs.publish("0", [GOOD, BOOM, GOOD])  # sequence numbers 0, 1, 2
        await until(lambda: total(scrape(service), "acs_consumer_events_total", partition="0") == 3, 30, "3 events")
        await until(lambda: ckpt() == 2, 20, "the checkpoint past the failed event")
        samples = await asyncio.to_thread(scrape, service)
        assert total(samples, "acs_consumer_decode_errors_total", reason="internal") == 1
        assert total(samples, "acs_consumer_decode_errors_total") == 1
        assert total(samples, "acs_consumer_records_total", outcome="processed") == 2
        assert total(samples, "acs_consumer_partition_lag_events", partition="0") == 0
        assert total(samples, "acs_consumer_partition_stalled_seconds", partition="0") == 0
        await until(lambda: total(scrape(service), "acs_consumer_dead_letters_total", outcome="written") == 1, 20,
                    "the dead letter")
        # The partition goes on: later events are processed, checkpointed, and the lag is set again.
        eventhubs.publish("0", [GOOD, BOOM, GOOD, GOOD])  # 3..6
        # Checkpoints are scrape-aligned: a scrape that shows the 7 events lets them name the last one.
        await until(lambda: total(scrape(service), "acs_consumer_events_total", partition="0") == 7, 30, "7 events")
        await until(lambda: ckpt() == 6, 20, "the checkpoint after later events")
        samples = await asyncio.to_thread(scrape, service)
        assert total(samples, "acs_consumer_events_total", partition="0") == 7
        assert total(samples, "acs_consumer_decode_errors_total", reason="internal") == 2
        assert total(samples, "acs_consumer_records_total", outcome="processed") == 5
        assert total(samples, "acs_consumer_partition_lag_events", partition="0") == 0
        await until(lambda: total(scrape(service), "acs_consumer_dead_letters_total", outcome="written") == 2, 20,
                    "the second dead letter")
        assert service.health.ready()[0], service.health.ready()[1]
        service.request_stop()
        return await asyncio.wait_for(serving, 20)

    with caplog.at_level(logging.INFO, logger="consumer"):
        assert asyncio.run(main()) == 0

    failed = [r for r in caplog.records if r.getMessage().startswith("event processing failed")]
    assert [(r.partition, r.sequence_number, r.reason, r.levelname) for r in failed] == \
        [("0", 1, "internal", "ERROR"), ("0", 4, "internal", "ERROR")]
    for record in failed:
        line = JsonFormatter().format(record)
        assert "KeyError at test_isolation.py:" in line
        assert SECRET not in line and "boom" not in line and "records" not in line, line

    service_client = BlobServiceClient.from_connection_string(azurite.connection_string)
    try:
        container = service_client.get_container_client(f"{blob_container}-dl")
        letters = {blob.name: blob.metadata for blob in container.list_blobs(include=["metadata"])}
        prefix = f"{eventhubs.fully_qualified_namespace}/{eventhubs.hub.name}/Default/0"
        assert sorted(letters) == [f"{prefix}/1.body", f"{prefix}/4.body"]
        for name, meta in letters.items():
            assert (meta["partition"], meta["reason"]) == ("0", "internal")
            assert meta["detail"].startswith("KeyError at test_isolation.py:") and SECRET not in meta["detail"]
            assert container.download_blob(name).readall() == BOOM
    finally:
        service_client.close()


class StuckPipeline(Pipeline):
    """Holds a large body on the worker thread until the test lets it go."""

    release = threading.Event()

    def process(self, body, now, context=None):
        if b'"stuck"' in body:
            assert self.release.wait(60)
        return super().process(body, now, context)


def test_a_partition_that_makes_no_progress_is_named_by_readyz(eventhubs, azurite, blob_container):
    settings = settings_for(eventhubs, azurite, blob_container).model_copy(
        update={"readiness_partition_stalled_max_seconds": 1.0})
    service = Service(settings)
    service.pipeline.__class__ = StuckPipeline
    stuck = GOOD[:-1] + b', "stuck": "' + b"x" * settings.pipeline.offload_min_bytes + b'"}'

    async def main() -> int:
        serving = asyncio.create_task(service.serve())
        await until(lambda: service.http_port is not None and readyz(service)[0] == 200, 30, "readiness")
        eventhubs.publish("2", [GOOD, stuck, GOOD])
        await until(lambda: readyz(service)[0] == 503, 30, "/readyz to fail")
        status, report = await asyncio.to_thread(readyz, service)
        check = report["checks"]["partitions"]
        assert not check["ok"] and check["detail"].startswith("no progress while events wait on partition 2 (")
        assert [name for name, c in report["checks"].items() if not c["ok"]] == ["partitions"]
        samples = await asyncio.to_thread(scrape, service)
        assert total(samples, "acs_consumer_partition_stalled_seconds", partition="2") > 1.0
        assert total(samples, "acs_consumer_partition_stalled_seconds", partition="0") == 0
        assert (await asyncio.to_thread(get, service, "/healthz"))[0] == 200  # the loop answers meanwhile
        StuckPipeline.release.set()
        await until(lambda: total(scrape(service), "acs_consumer_records_total", outcome="processed") == 3, 20,
                    "the held body and the one after it")
        await until(lambda: readyz(service)[0] == 200, 20, "/readyz to pass again")
        assert total(await asyncio.to_thread(scrape, service), "acs_consumer_partition_stalled_seconds",
                     partition="2") == 0
        service.request_stop()
        return await asyncio.wait_for(serving, 20)

    try:
        assert asyncio.run(main()) == 0
    finally:
        StuckPipeline.release.set()
