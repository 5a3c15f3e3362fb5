"""Hostile input at the consumer level: `acs-sms-consumer run` as a subprocess, the real SDK producer
publishing to the local Event Hubs endpoint, Azurite for checkpoints and dead letters.

Published: bodies that are not JSON, empty, binary, UTF-16, invalid UTF-8, truncated, nested past
any parser's depth limit, over the configured size limit, JSON that holds no records, numbers where
strings belong, NaN/Infinity (bare and as strings, and a number that overflows a double), times
from year 1 to year 9999 and nonsense, duplicate records and bodies, and a flood of 100,000 distinct
countries, result codes, number types, operation names, usage types, unit types and categories.
Then (a second test) every body of tests/crafted.py, crafted against the algorithms that read
untrusted bytes, at 1 MiB, followed by good bodies.

Asserted: the process stays alive and ready; every body is counted once in
`acs_consumer_events_total`; decode errors per reason are exactly what was sent; record outcomes
and every counter family's total equal what the same bytes make in the pure pipeline; every label of
every family is within the contract; RSS stays bounded after the flood; every undecodable body is in
the dead-letter container, byte for byte, with its partition, sequence number, offset and reason.

A 10 MB body cannot be published at all: the SDK refuses to put an event larger than the link's
maximum message size (1 MiB on the local endpoint, as on Event Hubs Standard) into a batch, so the
test asserts that refusal and exercises `too_large` with a body one byte over the consumer's own
configured `pipeline.max_body_bytes` instead.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from azure.eventhub import EventData, EventHubProducerClient
from azure.storage.blob import BlobServiceClient
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import LabelLimits, PipelineSettings
from consumer.decode import decode_body
from acs_sms_devtools.traffic import generate_corpus
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline
from tests.e2e.hostile import contract_violations, publish_batched
from tests.crafted import crafted_bodies
from tests.e2e.support import ConsumerProcess, free_port, write_config

MAX_BODY = 256 * 1024  # pipeline.max_body_bytes of the test's consumer
FLOOD = 100_000  # distinct values per open-ended label in the flood
RESOURCE_EVERY = 50  # every 50th SMS and Usage record of the flood has a resource of its own (label limit: 10)
DUPLICATES_WINDOW = 20_000  # duplicates/correlation window entries of the test's consumer
#: RSS the flood may add. The state that may grow with distinct input is bounded by configuration:
#: label sets (≤ 50/50/50/20 values), the label memos (4,096 entries each), the duplicate and
#: correlation windows (20,000 entries each here, ~200 B/entry → ≤ 8 MB), metric children (bounded by
#: the label sets). Plus transient buffers: the SDK's prefetch (300 events × ≤ 256 KB) and the decoded
#: body in hand. 100,000 distinct values kept anywhere (one small str + dict slot each, ×7 labels)
#: would add well over 50 MB, so 48 MiB separates "bounded" from "leaks per distinct value".
RSS_GROWTH_LIMIT = 48 * 1024 * 1024

RESOURCE = "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS"
T0 = "2026-01-01T00:00:00.0000000Z"


def sms(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "time": T0, "resourceId": RESOURCE, "operationName": "SMSMessagesSent", "operationVersion": "2021-03-07",
        "category": "SMSOperational", "resultType": "Succeeded", "resultSignature": 202, "durationMs": 120,
        "properties": {"NumberType": "LongCodeNumber", "Country": "US", "MessageId": "m-1",
                       "OutgoingMessageLength": 20},
    }
    properties = dict(record["properties"])  # type: ignore[call-overload]
    for key, value in fields.items():
        if key[0].isupper():
            properties[key] = value
        else:
            record[key] = value
    record["properties"] = properties
    return record


def usage(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "time": T0, "resourceId": RESOURCE, "operationName": "SMS", "category": "Usage",
        "properties": {"RecordId": "r-1", "UsageType": "SMS", "UnitType": "Message", "Quantity": 1},
    }
    properties = dict(record["properties"])  # type: ignore[call-overload]
    for key, value in fields.items():
        if key[0].isupper():
            properties[key] = value
        else:
            record[key] = value
    record["properties"] = properties
    return record


def body(*records: object) -> bytes:
    return orjson.dumps({"records": list(records)})


def undecodable() -> dict[str, tuple[bytes, str]]:
    """Bodies that yield no records: name → (body, decode error reason)."""
    real = generate_corpus(40, records_per_body=40, seed=5)[0]
    too_large = orjson.dumps({"records": [usage(RecordId="big")], "pad": ""})
    too_large = too_large[:-2] + b"x" * (MAX_BODY + 1 - len(too_large)) + b'"}'
    return {
        "not_json": (b"this is not json {", "invalid_json"),
        "empty": (b"", "invalid_json"),
        "whitespace": (b" \r\n\t ", "invalid_json"),
        "truncated": (real[: len(real) // 2], "invalid_json"),
        "truncated_single_quotes": (b"{'records': [{'category': 'SMSOp", "invalid_json"),
        "nested_arrays_100000": (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        "nested_objects_5000": (b'{"a":' * 5000 + b"1" + b"}" * 5000, "invalid_json"),
        "double_overflow": (b'{"records":[{"category":"Usage","operationName":"SMS","properties":{"Quantity":1e400}}]}',
                            "invalid_json"),
        "too_large": (too_large, "too_large"),
        "binary": (bytes(range(256)) * 4, "encoding"),
        "utf16": ('{"records": []}'.encode("utf-16"), "encoding"),
        "invalid_utf8": (b'{"records":[{"category":"\xff\xfe\xc3"}]}', "encoding"),
        "null": (b"null", "not_records"),
        "number": (b"42", "not_records"),
        "string": (b'"records"', "not_records"),
        "records_not_array": (b'{"records": {"category": "SMSOperational"}}', "not_records"),
        "empty_records": (b'{"records": []}', "not_records"),
        "empty_array": (b"[]", "not_records"),
        "object_without_records": (b'{"hello": "world", "n": [1, 2, 3]}', "not_records"),
    }


def decodable() -> list[bytes]:
    """Bodies that decode, full of records that are odd, invalid or duplicated."""
    # 1,000 levels: just under the parser's depth limit (1,024) with the envelope around it
    deep = body(sms(MessageId="deep-1", Extra="leaf")).replace(b'"leaf"', b'{"a":' * 1000 + b'"leaf"' + b"}" * 1000)
    wrong_types = [
        sms(operationName=123), sms(category=5), sms(Country=44), sms(NumberType=1), sms(MessageId=123456),
        sms(resultType=0), sms(resultSignature="four hundred"), sms(resultSignature=[400]), sms(durationMs="fast"),
        sms(durationMs=-5), sms(durationMs=True), sms(time=12345), sms(properties=7), sms(properties="not json"),
        sms(properties=["a"]), sms(Country={"iso": "US"}), sms(operationName=None), sms(OutgoingMessageLength="long"),
        sms(DeliveryAttempts=-1), usage(Quantity="lots"), usage(Quantity=-5), usage(Quantity=None),
        usage(UsageType=7), usage(UnitType=["x"]), usage(RecordId=99), 1, "x", None, True, [], {},
        {"category": "SMSOperational"}, {"operationName": "SMSMessagesSent"},
    ]
    nan_bare = (b'{"records":[' + body(sms(MessageId="nan-1"))[12:-2] .replace(b'"durationMs":120', b'"durationMs":NaN')
                + b"," + body(usage(RecordId="inf-1"))[12:-2].replace(b'"Quantity":1', b'"Quantity":Infinity')
                + b"," + body(usage(RecordId="inf-2"))[12:-2].replace(b'"Quantity":1', b'"Quantity":-Infinity') + b"]}")
    nan_strings = json.dumps({"records": [sms(MessageId="nan-2", durationMs="NaN"), sms(MessageId="nan-3", durationMs="Infinity"),
                       usage(RecordId="inf-3", Quantity="NaN"), usage(RecordId="inf-4", Quantity="-Infinity"),
                       usage(RecordId="big-5", Quantity=1e308), sms(MessageId="big-6", durationMs=1.7e308),
                       sms(MessageId="big-7", DeliveryAttempts=10**30, operationName="SMSDeliveryReportsReceived")]}).encode()
    times = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.9999999Z", "1970-01-01T00:00:00Z",
             "2999-01-01T00:00:00+14:00", "0001-01-01T00:00:00-12:00", "-0001-01-01T00:00:00Z",
             "10000-01-01T00:00:00Z", "2024-13-45T99:99:99Z", "", "now", 0, -1e18, 1e18, "12/31/9999 23:59:59",
             "01/01/0001 00:00:00", "2026-01-01T00:00:00.123456789012345Z", None]
    far_times = [sms(MessageId=f"t-{i}", time=t) for i, t in enumerate(times)]
    far_times += [usage(RecordId=f"t-{i}", time=t) for i, t in enumerate(times)]
    # A send at year 1 and its report at year 9999 (and the reverse): latency must stay finite and ≥ 0.
    far_times += [sms(MessageId="pair-1", time="0001-01-01T00:00:00Z"),
                  sms(MessageId="pair-1", time="9999-12-31T23:59:59Z", operationName="SMSDeliveryReportsReceived",
                      resultSignature=2000, DeliveryAttempts=1),
                  sms(MessageId="pair-2", time="9999-12-31T23:59:59Z"),
                  sms(MessageId="pair-2", time="0001-01-01T00:00:00Z", operationName="SMSDeliveryReportsReceived",
                      resultSignature=2000, DeliveryAttempts=1)]
    repeated = sms(MessageId="dup-1", resultType="Failed", resultSignature=400)
    duplicate_body = generate_corpus(200, records_per_body=200, seed=9)[0]
    return [
        body(*wrong_types),
        deep,
        nan_bare,
        nan_strings,
        body(*far_times),
        body(repeated, repeated, repeated, usage(RecordId="dup-u"), usage(RecordId="dup-u")),
        duplicate_body,
        duplicate_body,  # the same body again: Azure Monitor delivers at least once
    ]


def flood() -> list[bytes]:
    """FLOOD records each of: SMS records with distinct country, result code, number type and
    operation name; Usage records with distinct usage and unit type; records of distinct categories;
    every RESOURCE_EVERY-th SMS and Usage record with a distinct resource (FLOOD / RESOURCE_EVERY of
    each; not every record, and short ids, so that the bodies stay under MAX_BODY)."""
    records: list[object] = []
    for i in range(FLOOD):
        sms = {"time": T0, "operationName": f"SMSOp{i}", "category": "SMSOperational",
               "resultType": "Failed", "resultSignature": 100_000 + i,
               "properties": {"Country": f"C{i}", "NumberType": f"N{i}", "MessageId": f"f-{i}"}}
        usage = {"time": T0, "operationName": "SMS", "category": "Usage",
                 "properties": {"RecordId": f"f-{i}", "UsageType": f"U{i}", "UnitType": f"T{i}", "Quantity": 1}}
        if i % RESOURCE_EVERY == 0:
            sms["resourceId"] = f"/P/COMMUNICATIONSERVICES/R{i}"
            usage["resourceId"] = f"/P/COMMUNICATIONSERVICES/U{i}"
        records += [sms, usage]
        records.append({"time": T0, "operationName": "x", "category": f"Cat{i}"})
    per_body = 1500  # ~150 KB bodies, under MAX_BODY
    return [body(*records[i: i + per_body]) for i in range(0, len(records), per_body)]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def by(found: dict, name: str, label: str | None = None) -> Counter[str]:  # type: ignore[type-arg]
    """Total of sample `name`, grouped by one label (or all together under "")."""
    totals: Counter[str] = Counter()
    for (sample, labels), value in found.items():
        if sample == name:
            totals[dict(labels).get(label, "") if label else ""] += value
    return totals


#: Families whose totals do not depend on the order in which partitions are interleaved.
TOTALS = ("acs_sms_operations_total", "acs_sms_failures_total", "acs_sms_api_duration_seconds_count",
          "acs_sms_delivery_latency_seconds_count", "acs_sms_delivery_reports_unmatched_total",
          "acs_sms_delivery_attempts_count", "acs_sms_message_characters_total", "acs_usage_records_total",
          "acs_usage_quantity_total", "acs_consumer_repaired_bodies_total", "acs_consumer_record_age_seconds_count")


def test_hostile_bodies_are_all_accounted_for_bounded_and_dead_lettered(eventhubs, azurite, blob_container,
                                                                         tmp_path: Path) -> None:
    settings = PipelineSettings(max_body_bytes=MAX_BODY, duplicates_max_entries=DUPLICATES_WINDOW,
                                correlation_max_entries=DUPLICATES_WINDOW, labels=LabelLimits())
    partitions = eventhubs.partition_ids
    bad = undecodable()
    for name, (payload, reason) in bad.items():  # the premise of each case, checked in-process
        assert decode_body(payload, MAX_BODY).error == reason, name
    good = decodable()
    assert all(decode_body(payload, MAX_BODY).error is None for payload in good)

    # 10 MB: the SDK will not send it (nor would Event Hubs Standard: 1 MB per event).
    with EventHubProducerClient.from_connection_string(eventhubs.connection_string) as producer:
        batch = producer.create_batch(partition_id=partitions[0])
        assert batch.max_size_in_bytes <= 1024 * 1024
        with pytest.raises(ValueError):
            batch.add(EventData(b'{"records": [' + b" " * (10 * 1024 * 1024) + b"]}"))

    port = free_port()
    config = write_config(
        tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name, azurite.connection_string,
        blob_container, port,
        pipeline={"max_body_bytes": MAX_BODY, "duplicates_max_entries": DUPLICATES_WINDOW,
                  "correlation_max_entries": DUPLICATES_WINDOW},
        deadletter__max_blobs_per_minute=1000,
    )
    consumer = ConsumerProcess(config, port, tmp_path / "consumer.log").start()
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 60, "readiness")

        # Phase 1: every hostile body, round-robin over the partitions.
        phase1 = [(partitions[i % len(partitions)], payload)
                  for i, payload in enumerate([p for p, _ in bad.values()] + good)]
        order = publish_batched(eventhubs.connection_string, phase1)
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == len(phase1), 60, "phase 1 events")
        consumer.wait_until(lambda: consumer.total("acs_consumer_partition_lag_events") == 0, 20, "phase 1 lag")
        rss_before = consumer.total("process_resident_memory_bytes")

        # Phase 2: the flood, all partitions.
        flood_bodies = flood()
        phase2 = [(partitions[i % len(partitions)], payload) for i, payload in enumerate(flood_bodies)]
        publish_batched(eventhubs.connection_string, phase2)
        published = len(phase1) + len(phase2)
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == published, 60, "flood events")
        consumer.wait_until(lambda: consumer.total("acs_consumer_dead_letters_total", outcome="written") == len(bad),
                            20, "dead letters")
        assert consumer.process.poll() is None
        assert consumer.get("/readyz")[0] == 200
        assert consumer.get("/healthz")[0] == 200
        rss_after = consumer.total("process_resident_memory_bytes")
        _, scrape = consumer.get("/metrics")
        text = scrape.decode()
    finally:
        code = consumer.stop()
    assert code == 0, consumer.logs()[-3000:]
    actual = samples(text)

    # Every body counted once, per partition.
    for partition in partitions:
        sent = sum(1 for p, _ in phase1 + phase2 if p == partition)
        assert actual[("acs_consumer_events_total", (("partition", partition),))] == sent

    # Decode errors: exactly what was sent, per reason.
    assert by(actual, "acs_consumer_decode_errors_total", "reason") == Counter(reason for _, reason in bad.values())

    # Everything else: what the pure pipeline makes of the same bytes (order-independent totals).
    metrics = Metrics(settings.buckets, "test")
    pipeline = Pipeline(settings, metrics.domain)
    for _, payload in phase1 + phase2:
        pipeline.process(payload, time.time())
    expected = samples(metrics.render().decode())
    assert by(actual, "acs_consumer_records_total", "outcome") == by(expected, "acs_consumer_records_total", "outcome")
    for name in TOTALS:
        assert by(actual, name) == pytest.approx(by(expected, name)), name
    outcomes = by(actual, "acs_consumer_records_total", "outcome")
    assert outcomes["processed"] >= 2 * FLOOD and outcomes["skipped"] >= FLOOD
    assert outcomes["invalid"] >= 20 and outcomes["duplicate"] >= 150  # the corpus body again + 3 repeated records

    # Labels: within the contract for every label of every family.
    assert contract_violations(text, partitions) == []
    assert by(actual, "acs_usage_records_total", "usage_type")["other"] >= FLOOD - 50
    assert by(actual, "acs_usage_records_total", "resource")["other"] >= FLOOD // RESOURCE_EVERY - 10

    # Memory: bounded after 100,000 distinct values of every open-ended label.
    assert rss_before > 0
    print(f"RSS before the flood {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB")
    assert rss_after - rss_before <= RSS_GROWTH_LIMIT, (rss_before, rss_after)

    # Dead letters: each undecodable body, byte for byte, with its position and reason.
    expected_letters = {}
    for partition, indexes in order.items():
        for sequence, index in enumerate(indexes):
            payload = phase1[index][1]
            reason = decode_body(payload, MAX_BODY).error
            if reason is not None:
                expected_letters[(partition, str(sequence))] = (payload, reason.value)
    assert len(expected_letters) == len(bad)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    try:
        container = service.get_container_client(f"{blob_container}-dl")
        letters = list(container.list_blobs(include=["metadata"]))
        assert len(letters) == len(bad)
        for letter in letters:
            meta = letter.metadata
            key = (meta["partition"], meta["sequencenumber"])
            assert key in expected_letters, meta
            payload, reason = expected_letters.pop(key)
            assert meta["reason"] == reason
            assert meta["offset"] != ""
            assert meta["size"] == str(len(payload)) and meta["truncated"] == "false"
            assert container.download_blob(letter.name).readall() == payload
    finally:
        service.close()
    assert not expected_letters

    # Logs: every rejected body named with its partition and sequence number.
    lines = [json.loads(line) for line in consumer.logs().splitlines() if line.strip()]
    rejected = {(line["partition"], line["sequence_number"]) for line in lines
                if line["message"].startswith("body rejected")}
    assert len(rejected) == len(bad)


#: Crafted bodies as large as an event can be: the hub's 1 MiB message size less room for the AMQP
#: envelope.
CRAFTED_SIZE = 1000 * 1024


def test_crafted_bodies_of_event_size_are_accounted_and_the_consumer_goes_on(eventhubs, azurite, blob_container,
                                                                            tmp_path: Path) -> None:
    """Every shape of tests/crafted.py (bodies crafted against the algorithms that read untrusted
    bytes, not only against the format) at ~1 MiB, through `run`: each body counted once, the
    undecodable ones counted by reason and dead-lettered byte for byte, and good bodies published
    after them all counted."""
    settings = PipelineSettings(max_body_bytes=1024 * 1024)
    bodies = list(crafted_bodies(CRAFTED_SIZE).values())
    reasons = Counter(r.value for r in (decode_body(b, settings.max_body_bytes).error for b in bodies) if r)
    assert reasons == {"invalid_json": 8}  # the premise: the string and nesting shapes hold no records
    good = generate_corpus(4_000, records_per_body=100, seed=11)
    partitions = eventhubs.partition_ids
    port = free_port()
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          azurite.connection_string, blob_container, port,
                          pipeline={"max_body_bytes": settings.max_body_bytes}, deadletter__max_blobs_per_minute=1000)
    consumer = ConsumerProcess(config, port, tmp_path / "consumer.log").start()
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 60, "readiness")
        crafted = [(partitions[i % len(partitions)], payload) for i, payload in enumerate(bodies)]
        publish_batched(eventhubs.connection_string, crafted)
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == len(crafted), 60, "crafted events")
        # Then good bodies on every partition, after the crafted ones.
        later = [(partitions[i % len(partitions)], payload) for i, payload in enumerate(good)]
        publish_batched(eventhubs.connection_string, later)
        published = len(crafted) + len(later)
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == published, 60, "good events")
        consumer.wait_until(lambda: consumer.total("acs_consumer_dead_letters_total", outcome="written")
                            == sum(reasons.values()), 30, "dead letters")
        assert consumer.process.poll() is None
        assert consumer.get("/healthz")[0] == 200 and consumer.get("/readyz")[0] == 200
        _, scrape = consumer.get("/metrics")
    finally:
        code = consumer.stop()
    assert code == 0, consumer.logs()[-3000:]
    actual = samples(scrape.decode())
    assert by(actual, "acs_consumer_decode_errors_total", "reason") == reasons

    # Records: what the pure pipeline makes of the same bytes; the good bodies all processed.
    metrics = Metrics(settings.buckets, "test")
    pipeline = Pipeline(settings, metrics.domain)
    for _, payload in crafted + later:
        pipeline.process(payload, time.time())
    expected = samples(metrics.render().decode())
    outcomes = by(actual, "acs_consumer_records_total", "outcome")
    assert outcomes == by(expected, "acs_consumer_records_total", "outcome")
    assert outcomes["processed"] >= 4_000 * 0.9  # the corpus's own invalid/duplicate records aside

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    try:
        container = service.get_container_client(f"{blob_container}-dl")
        letters = {container.download_blob(blob.name).readall() for blob in container.list_blobs()}
    finally:
        service.close()
    assert letters == {b for b in bodies if decode_body(b, settings.max_body_bytes).error is not None}
