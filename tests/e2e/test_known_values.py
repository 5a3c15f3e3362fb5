"""`run` against values written by hand: a fixed input whose every metric was worked out on paper.

The other e2e tests compare `run` with the pure pipeline run in the test process, which proves that
the shell loses and doubles nothing but cannot catch a parsing rule that is wrong in both. Here the
expected series are literals, derived in the comments from the records below (both record shapes,
the field quirks of shared/reference/sms-logs.md, a duplicate, a skipped category, an invalid record,
a repaired body and an undecodable one). The label vocabularies of docs/metrics.md's metric reference are
pinned in tests/test_metrics.py; the values used here must be in them.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.e2e.support import ConsumerProcess, free_port, publish, write_config

BASE = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)


def at(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


#: The ARM id of an ACS resource as Event Hubs writes it (upper-cased); its `resource` label is the
#: lower-cased last segment.
ARM = "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/"


def sent(message_id: str, t: float, *, result: str = "Succeeded", signature: object = 202, duration: object = 100,
         country: str = "US", number_type: str = "LongCodeNumber", resource: str | None = "ACS-PROD") -> dict:
    record = {"time": at(t), "category": "SMSOperational", "operationName": "SMSMessagesSent", "resultType": result,
              "resultSignature": signature, "durationMs": duration, "callerIpAddress": "192.0.2.1",
              "properties": {"MessageId": message_id, "PhoneNumber": "+15550100001", "NumberType": number_type,
                             "Country": country, "OutgoingMessageLength": 20, "IncomingMessageLength": 0,
                             "DeliveryAttempts": 0}}
    if resource is not None:
        record["resourceId"] = ARM + resource
    return record


def report(message_id: str, t: float, *, result: str = "Succeeded", signature: object = 2000) -> dict:
    return {"time": at(t), "resourceId": ARM + "ACS-PROD", "category": "SMSOperational",
            "operationName": "SMSDeliveryReportsReceived", "resultType": result, "resultSignature": signature,
            "durationMs": 0,
            "properties": {"MessageId": message_id, "PhoneNumber": "+15550100001", "NumberType": "LongCodeNumber",
                           "Country": "US", "DeliveryAttempts": 2}}


def bodies() -> list[bytes]:
    # Message ids that are not ACS' `Outgoing_<time><guid>` form: only exact pairing gives a latency.
    body1 = {"records": [
        sent("m-1", 0),                                   # US LongCode Succeeded, 100 ms
        sent("m-2", 1, duration="250"),                   # durationMs as a string: 250 ms
        sent("m-3", 2, result="Failed", signature=429, duration=50, country="de"),  # country lower-cased
        report("m-1", 7),                                 # pairs with m-1: latency 7 s
        report("m-2", 31, result="Failed", signature="4006"),  # pairs with m-2: latency 30 s, failure 4006
        report("m-9", 40),                                # no send seen, id not ACS-form: waits for its send
        {"time": at(3), "category": "ChatOperational", "operationName": "ChatMessageSent"},  # skipped
    ]}
    # Log Analytics shape (PascalCase columns, properties at top level), plus the Usage category.
    body2 = [
        {"TimeGenerated": at(60), "Category": "SMSOperational", "OperationName": "SMSMessagesReceived",
         "ResultType": "Succeeded", "ResultSignature": 200, "DurationMs": 20, "PhoneNumber": "+15550100002",
         "NumberType": "TollFreeNumber", "Country": "CA", "IncomingMessageLength": 12, "MessageId": "in-1",
         "_ResourceId": ARM.lower() + "acs-test"},  # the Log Analytics column, lower-cased there
        {"time": at(61), "category": "Usage", "operationName": "Usage", "resourceId": ARM + "ACS-TEST",
         "properties": {"RecordId": "u-1", "UsageType": "SMS", "UnitType": "Message", "Quantity": 2}},
        {"time": at(62), "category": "Usage", "operationName": "Usage", "resourceId": ARM + "ACS-PROD",
         "properties": {"RecordId": "u-2", "UsageType": "SMS", "UnitType": "Message", "Quantity": "1.5"}},
        {"time": at(61), "category": "Usage", "operationName": "Usage",  # same as u-1: a duplicate
         "properties": {"RecordId": "u-1", "UsageType": "SMS", "UnitType": "Message", "Quantity": 2}},
        {"time": at(63), "category": "Usage", "operationName": "Usage",  # Quantity not a number: invalid
         "properties": {"RecordId": "u-3", "UsageType": "SMS", "UnitType": "Message", "Quantity": "lots"}},
    ]
    # Single quotes, as Azure has been seen to write: repaired, then counted like any other body.
    # (no resourceId: resource "unknown")
    body3 = json.dumps({"records": [sent("m-4", 90, country="FR", number_type="ShortCodeNumber", resource=None)]})
    body3 = body3.replace('"', "'")
    return [json.dumps(body1).encode(), json.dumps(body2).encode(), body3.encode(), b"{not json"]


# Worked out from the records above (families that hold labels: exact series; nothing else exists).
EXPECTED_OPERATIONS = {
    ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "US", "acs-prod"): 2,        # m-1, m-2
    ("SMSMessagesSent", "Failed", "LongCodeNumber", "DE", "acs-prod"): 1,           # m-3
    ("SMSMessagesSent", "Succeeded", "ShortCodeNumber", "FR", "unknown"): 1,        # m-4 (repaired body)
    ("SMSDeliveryReportsReceived", "Succeeded", "LongCodeNumber", "US", "acs-prod"): 2,  # m-1, m-9
    ("SMSDeliveryReportsReceived", "Failed", "LongCodeNumber", "US", "acs-prod"): 1,     # m-2
    ("SMSMessagesReceived", "Succeeded", "TollFreeNumber", "CA", "acs-test"): 1,
}
EXPECTED_FAILURES = {
    ("SMSMessagesSent", "429", "LongCodeNumber", "DE", "acs-prod"): 1,
    ("SMSDeliveryReportsReceived", "4006", "LongCodeNumber", "US", "acs-prod"): 1,
}
EXPECTED_RECORDS = {
    ("SMSOperational", "processed"): 8,    # 6 in body 1, 1 in body 2, 1 in body 3
    ("ChatOperational", "skipped"): 1,
    ("Usage", "processed"): 2,
    ("Usage", "duplicate"): 1,
    ("Usage", "invalid"): 1,
}


def series(samples: dict, name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    out = {}
    for (sample_name, sample_labels), value in samples.items():
        if sample_name == name:
            values = dict(sample_labels)
            out[tuple(values[label] for label in labels)] = value
    return out


def test_run_makes_the_hand_computed_metrics_of_a_fixed_input(eventhubs, azurite, blob_container, tmp_path: Path) -> None:
    publish(eventhubs.connection_string, bodies(), eventhubs.partition_ids[:1])  # one partition: one order
    port = free_port()
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          azurite.connection_string, blob_container, port)
    consumer = ConsumerProcess(config, port, tmp_path / "run.log").start()
    try:
        consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == 4, 60, "the four events")
        samples = consumer.metrics()
    finally:
        consumer.stop()

    assert series(samples, "acs_sms_operations_total", ("operation", "result", "number_type", "country", "resource")) == \
        EXPECTED_OPERATIONS
    assert series(samples, "acs_sms_failures_total",
                  ("operation", "result_signature", "number_type", "country", "resource")) == EXPECTED_FAILURES
    assert series(samples, "acs_consumer_records_total", ("category", "outcome")) == EXPECTED_RECORDS
    assert series(samples, "acs_consumer_decode_errors_total", ("reason",)) == {("invalid_json",): 1}
    assert series(samples, "acs_consumer_repaired_bodies_total", ()) == {(): 1}
    assert series(samples, "acs_usage_records_total", ("usage_type", "unit_type", "resource")) == {
        ("SMS", "Message", "acs-test"): 1, ("SMS", "Message", "acs-prod"): 1}
    assert series(samples, "acs_usage_quantity_total", ("usage_type", "unit_type", "resource")) == {
        ("SMS", "Message", "acs-test"): 2, ("SMS", "Message", "acs-prod"): 1.5}
    # Outgoing characters: 20 per send (4 sends); incoming: 12 from the received message.
    assert series(samples, "acs_sms_message_characters_total", ("direction",)) == {("outgoing",): 80, ("incoming",): 12}
    # API durations of the sends: 100 + 250 + 50 + 100 ms (reports carry 0, the received message 20).
    assert consumer_sum(samples, "acs_sms_api_duration_seconds_count", operation="SMSMessagesSent") == 4
    assert abs(consumer_sum(samples, "acs_sms_api_duration_seconds_sum", operation="SMSMessagesSent") - 0.5) < 1e-9
    # Two exact pairs: 7 s (Succeeded) and 30 s (Failed). Only successful sends wait for a report: m-4
    # (m-3 failed). The report m-9 waits for its send; it counts as unmatched only when it leaves the
    # 2 h window (ages on the processing clock), so nothing is unmatched yet.
    assert consumer_sum(samples, "acs_sms_delivery_latency_seconds_count") == 2
    assert consumer_sum(samples, "acs_sms_delivery_latency_seconds_sum") == 37
    assert consumer_sum(samples, "acs_sms_delivery_latency_seconds_count", result="Failed") == 1
    assert consumer_sum(samples, "acs_sms_delivery_latency_seconds_count", resource="acs-prod") == 2
    assert series(samples, "acs_sms_delivery_reports_unmatched_total", ("result", "resource")) == {}
    assert series(samples, "acs_sms_correlation_pending", ("side",)) == {("sent",): 1, ("delivery_report",): 1}


def consumer_sum(samples: dict, name: str, **labels: str) -> float:
    return sum(value for (sample_name, sample_labels), value in samples.items()
               if sample_name == name and labels.items() <= dict(sample_labels).items())


def test_the_fixture_is_what_the_comments_say() -> None:
    """Guards the literal expectations above against an edit of the records that forgets them."""
    records = json.loads(bodies()[0])["records"]
    assert [r["properties"]["MessageId"] for r in records[:6]] == ["m-1", "m-2", "m-3", "m-1", "m-2", "m-9"]
    assert time.time() - BASE.timestamp() < 3600  # inside the default 2 h correlation window
