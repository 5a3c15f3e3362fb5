"""No personal data in /metrics or in the logs, end to end, whatever field it arrives in.

`acs-sms-consumer run` (logging at DEBUG) reads bodies full of realistic phone numbers (E.164 in many
countries, and as people type them), message ids (bare GUIDs and the `Outgoing_…_noam` form),
correlation ids, IPv4/IPv6 caller addresses and URIs with query strings — placed in every field of
both record shapes, including the ones that become labels (`operationName`, `category`,
`resultType`, `resultSignature`, `NumberType`, `Country`, `UsageType`, `UnitType`), in records that
fail validation, in records of skipped categories, and in bodies that cannot be decoded at all.
None of the values may appear in the /metrics text or in any log line the process wrote.
"""

from __future__ import annotations

import itertools
import json
import uuid
from pathlib import Path

import orjson

from consumer.decode import decode_body
from acs_sms_devtools.traffic import generate_corpus
from tests.e2e.hostile import contract_violations, publish_batched
from tests.e2e.support import ConsumerProcess, free_port, write_config

MAX_BODY = 64 * 1024

PHONES = [
    "+14255550123", "+12065550147", "+447700900123", "+33639980123", "+61491570123", "+4915123456789",
    "+81312345678", "+5511987654321", "+919876543210", "+8613800138000", "+27821234567", "+5215512345678",
    "+34612345678", "+390612345678", "+79161234567", "+971501234567", "+6591234567", "+821012345678",
    "14255550199", "+1 (425) 555-0100", "0044 7700 900456", "tel:+14255550111",
]
_ids = uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0)
GUIDS = [str(uuid.uuid5(_ids, str(i))) for i in range(8)]
MESSAGE_IDS = [
    *GUIDS[:4],
    "Outgoing_20240101120000" + GUIDS[4].replace("-", "") + "_noam",
    "Incoming_20240101120001" + GUIDS[5].replace("-", "") + "_noam",
    "Outgoing_20231115093012" + GUIDS[6] + "_euro",
]
CORRELATION_IDS = [GUIDS[7], "d6c3b0e2-5a1f-4c8e-9b7d-2f4e6a8c0b1d", "c0ffee00-dead-beef-cafe-000000000001"]
IPS = ["203.0.113.77", "198.51.100.23", "192.0.2.146", "2001:db8::8a2e:370:7334",
       "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1ff:fe23:4567:890a", "::ffff:203.0.113.9"]
URIS = [
    "https://contoso.communication.azure.com/sms?api-version=2021-03-07&to=%2B14255550123",
    "https://contoso.communication.azure.com/sms/deliveryReports?messageId=" + GUIDS[0],
    "/sms?api-version=2025-01-01&from=%2B18005550100",
]
PERSONAL = PHONES + MESSAGE_IDS + CORRELATION_IDS + IPS + URIS

#: Every field of both shapes (common schema top level, `properties`, Log Analytics flat).
TOP = ["time", "operationName", "operationVersion", "category", "resultType", "resultSignature", "resultDescription",
       "durationMs", "callerIpAddress", "correlationId", "level", "location", "resourceId", "identity"]
PROPS = ["PhoneNumber", "NumberType", "Country", "MessageId", "URI", "SdkType", "PlatformType", "Method",
         "OutgoingMessageLength", "IncomingMessageLength", "DeliveryAttempts", "RecordId", "UsageType", "UnitType",
         "Quantity", "Properties"]
FLAT = ["TimeGenerated", "OperationName", "Category", "CorrelationId", "CallerIpAddress", "ResultType",
        "ResultSignature", "PhoneNumber", "NumberType", "Country", "MessageId", "URI", "UsageType", "UnitType"]


def sms_record(pii: itertools.cycle, operation: str = "SMSMessagesSent") -> dict[str, object]:  # type: ignore[type-arg]
    return {
        "time": "2026-01-01T00:00:00.0000000Z", "operationName": operation, "category": "SMSOperational",
        "resultType": "Succeeded", "resultSignature": 202, "resultDescription": f"Sent to {next(pii)}",
        "durationMs": 120, "callerIpAddress": next(pii), "correlationId": next(pii), "level": "Informational",
        "location": "westeurope",
        "properties": {"PhoneNumber": next(pii), "NumberType": "LongCodeNumber", "Country": "US",
                       "MessageId": next(pii), "URI": next(pii), "OutgoingMessageLength": 20, "DeliveryAttempts": 1},
    }


def usage_record(pii: itertools.cycle) -> dict[str, object]:  # type: ignore[type-arg]
    return {
        "time": "2026-01-01T00:00:00.0000000Z", "operationName": "SMS", "category": "Usage",
        "correlationId": next(pii),
        "properties": {"RecordId": next(pii), "UsageType": "SMS", "UnitType": "Message", "Quantity": 1,
                       "Properties": json.dumps({"to": next(pii), "from": next(pii)})},
    }


def flat_record(pii: itertools.cycle) -> dict[str, object]:  # type: ignore[type-arg]
    return {"TimeGenerated": "2026-01-01T00:00:00Z", "OperationName": "SMSDeliveryReportsReceived",
            "Category": "SMSOperational", "CorrelationId": next(pii), "CallerIpAddress": next(pii),
            "ResultType": "Failed", "ResultSignature": "4001", "PhoneNumber": next(pii), "NumberType": "TollFreeNumber",
            "Country": "GB", "MessageId": next(pii), "URI": next(pii), "DeliveryAttempts": 2}


def pii_bodies() -> list[bytes]:
    """Decodable bodies: each personal value in each field of each record shape, plus records that
    fail validation and records of skipped categories carrying them."""
    pii = itertools.cycle(PERSONAL)
    records: list[object] = []
    for value in PERSONAL:
        for field in TOP:
            for base in (sms_record(pii), usage_record(pii), sms_record(pii, "SMSDeliveryReportsReceived")):
                base[field] = value
                records.append(base)
        for field in PROPS:
            for base in (sms_record(pii), usage_record(pii)):
                base["properties"][field] = value  # type: ignore[index]
                records.append(base)
            sms = sms_record(pii)
            sms[field] = value  # a few emitters put property fields at top level
            records.append(sms)
        for field in FLAT:
            flat = flat_record(pii)
            flat[field] = value
            records.append(flat)
        # PII as a property name, and records that are invalid for other reasons around it
        records.append({**sms_record(pii), value: value})
        records.append({**sms_record(pii), "durationMs": "slow", "category": "SMSOperational"})
        records.append({**usage_record(pii), "properties": {"Quantity": value, "RecordId": next(pii)}})
        records.append({"category": value, "operationName": value, "properties": {"PhoneNumber": next(pii)}})
        records.append({"category": "ChatOperational", "operationName": value, "callerIpAddress": next(pii)})
        records.append({"PhoneNumber": value, "MessageId": next(pii)})  # no category: invalid
        records.append(value)  # a bare string where a record should be
    # Spread over bodies; the order puts label-bound values first, where first-seen labels admit.
    bodies = [orjson.dumps({"records": records[i: i + 50]}) for i in range(0, len(records), 50)]
    assert all(len(b) <= MAX_BODY for b in bodies)
    return bodies


def rejected_bodies() -> list[bytes]:
    """Bodies that decode to nothing, each carrying personal values."""
    sample = orjson.dumps({"records": [sms_record(itertools.cycle(PERSONAL))]})
    return [
        b"not json: call " + PHONES[0].encode() + b" from " + IPS[0].encode(),
        sample[: len(sample) - 40],  # truncated
        sample.replace(b'"Succeeded"', b"'Succeeded"),  # broken quoting the repair cannot fix
        orjson.dumps({"records": PHONES[2]}),
        orjson.dumps({"phone": PHONES[3], "ip": IPS[3], "messageId": MESSAGE_IDS[4]}),
        orjson.dumps({"records": [], "uri": URIS[0]}),
        json.dumps({"records": [{"PhoneNumber": PHONES[4]}]}).encode("utf-16"),
        b'{"records":[{"PhoneNumber":"' + PHONES[5].encode() + b'\xff"}]}',
        b'{"records":[{"PhoneNumber":"' + PHONES[6].encode() + b'","q":1e999}]}',
        orjson.dumps({"records": [{"PhoneNumber": PHONES[7], "pad": "x" * MAX_BODY}]}),  # too large
    ]


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    found = [value for value in PERSONAL if value.lower() in lowered]
    # also the forms a normalisation could produce: digits of a phone number, an id without dashes
    found += [value for value in PHONES if "".join(c for c in value if c.isdigit()) in lowered]
    found += [value for value in GUIDS + CORRELATION_IDS if value.replace("-", "").lower() in lowered]
    return found


def test_no_personal_data_in_metrics_or_logs(eventhubs, azurite, blob_container, tmp_path: Path) -> None:
    partitions = eventhubs.partition_ids
    good = pii_bodies()
    bad = rejected_bodies()
    assert all(decode_body(b, MAX_BODY).error is None for b in good)
    assert all(decode_body(b, MAX_BODY).error is not None for b in bad)
    corpus = generate_corpus(2000, records_per_body=50, seed=21)  # realistic traffic around it
    bodies = good + bad + corpus
    port = free_port()
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          azurite.connection_string, blob_container, port,
                          pipeline={"max_body_bytes": MAX_BODY}, logging__level="DEBUG",
                          deadletter__max_blobs_per_minute=1000)
    consumer = ConsumerProcess(config, port, tmp_path / "consumer.log").start()
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 60, "readiness")
        publish_batched(eventhubs.connection_string, [(partitions[i % len(partitions)], b) for i, b in enumerate(bodies)])
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == len(bodies), 60, "all events")
        consumer.wait_until(lambda: consumer.total("acs_consumer_dead_letters_total", outcome="written") == len(bad),
                            20, "dead letters")
        consumer.wait_until(lambda: consumer.total("acs_consumer_checkpoints_total", outcome="ok") >= 1, 20, "a checkpoint")
        assert consumer.total("acs_consumer_records_total", outcome="invalid") > 0
        assert consumer.total("acs_consumer_decode_errors_total") == len(bad)
        _, scrape = consumer.get("/metrics")
        text = scrape.decode()
        (tmp_path / "metrics.txt").write_text(text)  # for a failure's post-mortem
    finally:
        code = consumer.stop()
    assert code == 0, consumer.logs()[-3000:]
    logs = consumer.logs()
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert any(line["level"] == "debug" for line in lines), "DEBUG lines were expected"
    assert sum(line["message"].startswith("body rejected") for line in lines) == len(bad)
    assert any(line["message"].startswith("invalid records") for line in lines)

    assert leaks(text) == [], "personal data in /metrics"
    assert leaks(logs) == [], "personal data in the logs"
    assert contract_violations(text, partitions) == []
