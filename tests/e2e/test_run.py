"""`acs-sms-consumer run` end to end: the local Event Hubs endpoint and Azurite, the real SDK on both
sides, the consumer as a subprocess with a real config file, /metrics scraped over HTTP.

Expected values come from running the same bodies through the pure pipeline in this process (the
`replay` path), so the assertions are exact: every body counted once, none lost, none twice.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from consumer.config import PipelineSettings
from acs_sms_devtools.traffic import generate_corpus
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline
from tests.e2e.support import ConsumerProcess, free_port, publish, write_config

SAMPLES = Path(__file__).resolve().parents[2] / "consumer" / "samples"
COMPARED = re.compile(r"^(acs_sms_|acs_usage_|acs_consumer_records_total|acs_consumer_decode_errors_total|acs_consumer_repaired_bodies_total)")
JUNK = b"this is not json {"


def without_source(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict:
    """The samples summed over the latency's `source` label: whether a delivery report meets its send
    (`paired`) or takes the send time from its MessageId (`message_id`) depends on the order in which
    the partitions are read, which differs between `run` and a pipeline fed the bodies in order. The
    count is the same either way; the MessageId carries the send time to the second only, so a latency
    may differ by up to 1 s, and with it its bucket: the latency's buckets are left out here and its
    sum is compared within 1 s per observation (`assert_same_samples`)."""
    folded: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for (name, labels), value in samples.items():
        if name == "acs_sms_delivery_latency_seconds_bucket" and ("le", "+Inf") not in labels:
            continue
        if name == "acs_sms_correlation_pending":
            continue  # a send read after its report (which took the MessageId's time) waits in vain
        key = (name, tuple(item for item in labels if item[0] != "source"))
        folded[key] = folded.get(key, 0.0) + value
    return folded


def expected_samples(bodies: list[bytes]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the pipeline makes of `bodies` (compared families only)."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics = Metrics(PipelineSettings().buckets, "test")
    pipeline = Pipeline(PipelineSettings(), metrics.domain)
    for body in bodies:
        pipeline.process(body, time.time())
    samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if COMPARED.match(sample.name):
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return without_source(samples)


def compared(process: ConsumerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return without_source({key: value for key, value in process.metrics().items() if COMPARED.match(key[0])})


def assert_same_samples(actual: dict, expected: dict) -> None:  # type: ignore[type-arg]
    """Exact equality, except float sums, which depend on the order of addition, and the delivery
    latency's sum, which may differ by up to 1 s per observation (see `without_source`)."""
    assert actual.keys() == expected.keys(), (actual.keys() - expected.keys(), expected.keys() - actual.keys())

    def close(key) -> object:  # noqa: ANN001
        if key[0] == "acs_sms_delivery_latency_seconds_sum":
            count = expected[("acs_sms_delivery_latency_seconds_count", key[1])]
            return pytest.approx(expected[key], abs=count * 1.0 + 1e-6)
        return pytest.approx(expected[key], rel=1e-9) if key[0].endswith("_sum") else expected[key]

    differing = {key: (actual[key], expected[key]) for key in expected if actual[key] != close(key)}
    assert not differing, differing


def personal_values(bodies: list[bytes]) -> set[str]:
    """Phone numbers, message ids, correlation ids and caller IPs present in the bodies."""
    found: set[str] = set()
    for body in bodies:
        try:
            records = json.loads(body)["records"]
        except (ValueError, KeyError, TypeError):
            continue
        for record in records:
            properties = record.get("properties") if isinstance(record.get("properties"), dict) else {}
            for source in (record, properties):
                for key in ("PhoneNumber", "MessageId", "correlationId", "callerIpAddress"):
                    value = source.get(key)
                    if isinstance(value, str) and len(value) >= 7:
                        found.add(value)
    return found


@pytest.fixture
def storage(azurite, blob_container):  # noqa: ANN001, ANN201 - fixtures
    return azurite.connection_string, blob_container


def test_run_counts_every_body_once_checkpoints_and_resumes_without_recounting(eventhubs, storage, tmp_path: Path) -> None:
    storage_connection_string, container = storage
    first = [
        (SAMPLES / "eventhubs-sms.json").read_bytes(),
        (SAMPLES / "eventhubs-usage.json").read_bytes(),
        (SAMPLES / "log-analytics-sms.json").read_bytes(),
        JUNK,
        *generate_corpus(3000, records_per_body=50, seed=11),
    ]
    sent = publish(eventhubs.connection_string, first, eventhubs.partition_ids)
    port = free_port()
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          storage_connection_string, container, port)

    consumer = ConsumerProcess(config, port, tmp_path / "run1.log").start()
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 60, "readiness")
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == len(first), 60, "all events")
        assert consumer.get("/healthz")[0] == 200
        assert consumer.get("/nope")[0] == 404
        assert_same_samples(compared(consumer), expected_samples(first))
        # Absolute anchors, independent of the pipeline's own arithmetic:
        assert consumer.total("acs_consumer_decode_errors_total", reason="invalid_json") == 1
        assert consumer.total("acs_consumer_records_total", category="ChatOperational", outcome="skipped") >= 1
        assert consumer.total("acs_consumer_owned_partitions") == 4
        assert consumer.total("acs_consumer_build_info") == 1
        for partition, count in sent.items():
            assert consumer.total("acs_consumer_events_total", partition=partition) == count
        consumer.wait_until(lambda: consumer.total("acs_consumer_dead_letters_total", outcome="written") == 1, 20, "dead letter")
        consumer.wait_until(lambda: consumer.total("acs_consumer_partition_lag_events") == 0, 20, "zero lag")
        started = time.monotonic()
        code = consumer.stop(signal.SIGTERM)
        stop_seconds = time.monotonic() - started
    finally:
        consumer.stop(signal.SIGKILL)
    print(f"\nSIGTERM: exit {code} after {stop_seconds:.2f} s")
    assert code == 0, consumer.logs()[-3000:]
    assert stop_seconds < 15

    # Checkpoints where the SDK (and KEDA's blobMetadata strategy) expect them, at the last event.
    service = BlobServiceClient.from_connection_string(storage_connection_string)
    try:
        blobs = {b.name: b.metadata for b in service.get_container_client(container).list_blobs(include=["metadata"])}
        prefix = f"{eventhubs.fully_qualified_namespace}/{eventhubs.hub.name}/$default".lower()
        for partition in eventhubs.partition_ids:
            last = eventhubs.event_count(partition) - 1
            assert blobs[f"{prefix}/checkpoint/{partition}"]["sequencenumber"] == str(last)
            assert f"{prefix}/ownership/{partition}" in blobs
        # The undecodable body is kept with its position.
        letters = list(service.get_container_client(f"{container}-dl").list_blobs(include=["metadata"]))
        assert len(letters) == 1
        assert letters[0].metadata["reason"] == "invalid_json"
        assert letters[0].metadata["partition"] in eventhubs.partition_ids
        assert letters[0].metadata["sequencenumber"].isdigit()
        kept = service.get_container_client(f"{container}-dl").download_blob(letters[0].name).readall()
        assert kept == JUNK
    finally:
        service.close()

    # Logs: JSON lines; event lines carry partition and sequence number; no personal data anywhere.
    logs = consumer.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(line["message"] == "starting acs-sms-consumer" and line["config"]["eventhub"]["connection_string"] == "***"
               for line in lines)
    rejected = [line for line in lines if line["message"].startswith("body rejected")]
    assert len(rejected) == 1 and rejected[0]["partition"] in eventhubs.partition_ids and rejected[0]["sequence_number"] >= 0
    assert any(line["message"] == "progress" for line in lines)
    secrets = personal_values(first)
    assert secrets, "the corpus should hold personal values to look for"
    leaked = [value for value in secrets if value in logs]
    assert not leaked, leaked[:5]
    assert "SharedAccessKey=" not in logs and "AccountKey=" not in logs

    # Restart: only the new events are counted (resumed from the checkpoints, nothing re-counted).
    second = generate_corpus(1000, records_per_body=50, seed=12)
    publish(eventhubs.connection_string, second, eventhubs.partition_ids)
    consumer = ConsumerProcess(config, port, tmp_path / "run2.log").start()
    try:
        # Every partition at its last event (lag 0): a re-count from an earlier position would come before
        # the new events in each partition, so it would be counted by now.
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") >= len(second)
                            and consumer.total("acs_consumer_partition_lag_events") == 0, 60, "second run events")
        assert consumer.total("acs_consumer_events_total") == len(second)
        assert_same_samples(compared(consumer), expected_samples(second))
        _, body = consumer.get("/metrics")
        text = body.decode()
        leaked = [value for value in personal_values(first + second) if value in text]
        assert not leaked, leaked[:5]
    finally:
        assert consumer.stop(signal.SIGTERM) == 0
