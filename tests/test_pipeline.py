"""consumer.pipeline: exact metric values for the samples and every counting rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.config import LabelLimits, PipelineSettings
from consumer.decode import DecodeError
from consumer.metrics import DomainMetrics, Metrics
from consumer.pipeline import MAX_REASONS, EventContext, Pipeline

SAMPLES = Path(__file__).resolve().parent.parent / "consumer" / "samples"
T0 = datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp()
NOW = T0 + 3600


def make(**settings) -> tuple[Pipeline, DomainMetrics]:
    metrics = Metrics(PipelineSettings().buckets, "test")
    pipeline = Pipeline(PipelineSettings(**settings), metrics.domain)
    return pipeline, metrics.domain


def body(*records) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def sms(op="SMSMessagesSent", result="Succeeded", time="2026-11-02T10:00:00Z", **props):
    record = {"category": "SMSOperational", "operationName": op, "properties": props}
    if result is not None:
        record["resultType"] = result
    if time is not None:
        record["time"] = time
    return record


def usage(record_id="r1", quantity=1, usage_type="SMS", unit_type="Message", time="2026-11-02T10:00:00Z"):
    return {"time": time, "category": "Usage", "operationName": "Usage",
            "properties": {"RecordId": record_id, "UsageType": usage_type, "UnitType": unit_type, "Quantity": quantity}}


def outcomes(m: DomainMetrics) -> dict:
    return dict(m.records.values)


# --- samples -----------------------------------------------------------------------------------


def test_eventhubs_sms_sample_exact_values():
    p, m = make()
    result = p.process((SAMPLES / "eventhubs-sms.json").read_bytes(), NOW, EventContext(partition="3"))
    assert (result.records, result.processed, result.invalid, result.skipped, result.duplicate) == (7, 7, 0, 0, 0)
    assert result.decode_error is None and not result.repaired
    assert m.operations.values == {
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "US", "acs-sample"): 1,
        ("SMSDeliveryReportsReceived", "Succeeded", "LongCodeNumber", "US", "acs-sample"): 1,
        ("SMSMessagesSent", "Succeeded", "TollFreeNumber", "CA", "acs-sample"): 1,
        ("SMSDeliveryReportsReceived", "Failed", "TollFreeNumber", "CA", "acs-sample"): 1,
        ("SMSMessagesSent", "Failed", "ShortCodeNumber", "GB", "acs-sample"): 1,
        ("SMSMessagesReceived", "Succeeded", "LongCodeNumber", "FR", "acs-sample"): 1,
        ("SMSOptOutReceived", "Succeeded", "LongCodeNumber", "US", "acs-sample"): 1,
    }
    assert m.failures.values == {
        ("SMSDeliveryReportsReceived", "4006", "TollFreeNumber", "CA", "acs-sample"): 1,
        ("SMSMessagesSent", "429", "ShortCodeNumber", "GB", "acs-sample"): 1,
    }
    assert m.message_characters.values == {("outgoing",): 221, ("incoming",): 46}
    assert m.delivery_latency.count("Succeeded", "LongCodeNumber", "paired", "acs-sample") == 1
    assert m.delivery_latency.children[("Succeeded", "LongCodeNumber", "paired", "acs-sample")][-1] == pytest.approx(3.376544, abs=1e-5)
    assert m.delivery_latency.count("Failed", "TollFreeNumber", "paired", "acs-sample") == 1
    assert m.delivery_latency.children[("Failed", "TollFreeNumber", "paired", "acs-sample")][-1] == pytest.approx(98.0)
    assert m.delivery_attempts.count("Succeeded") == 1 and m.delivery_attempts.count("Failed") == 1
    assert m.api_duration.count("SMSMessagesSent") == 3
    assert m.api_duration.children[("SMSMessagesSent",)][-1] == pytest.approx(0.131 + 0.098 + 0.045)
    assert m.unmatched_reports.values == {}
    assert m.events.values == {("3",): 1}
    assert outcomes(m) == {("SMSOperational", "processed"): 7}
    assert m.record_age.count("SMSOperational") == 7
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 0}


def test_eventhubs_usage_sample_exact_values():
    p, m = make()
    result = p.process((SAMPLES / "eventhubs-usage.json").read_bytes(), NOW)
    assert (result.processed, result.skipped, result.invalid) == (3, 1, 0)
    assert m.usage_records.values == {("SMS", "Message", "acs-sample"): 2, ("PSTN", "Minute", "acs-sample"): 1}
    assert m.usage_quantity.values == {("SMS", "Message", "acs-sample"): 3.0, ("PSTN", "Minute", "acs-sample"): 2.5}
    assert outcomes(m) == {("Usage", "processed"): 3, ("ChatOperational", "skipped"): 1}
    assert m.operations.values == {}
    assert m.events.values == {}  # no context, no event counted


def test_log_analytics_sample_exact_values():
    p, m = make()
    result = p.process((SAMPLES / "log-analytics-sms.json").read_bytes(), NOW)
    assert result.processed == 3
    assert m.operations.values == {
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "US", "unknown"): 1,
        ("SMSDeliveryReportsReceived", "Succeeded", "LongCodeNumber", "US", "unknown"): 1,
        ("SMSMessagesReceived", "Succeeded", "LongCodeNumber", "US", "unknown"): 1,
    }
    assert m.failures.values == {}
    assert m.delivery_latency.count("Succeeded", "LongCodeNumber", "paired", "unknown") == 1
    assert m.delivery_latency.children[("Succeeded", "LongCodeNumber", "paired", "unknown")][-1] == pytest.approx(0.1, abs=1e-5)
    assert m.message_characters.values == {("outgoing",): 151, ("incoming",): 110}


def test_both_shapes_make_the_same_metrics():
    la = [
        {"TimeGenerated": "2026-11-02T10:00:00Z", "OperationName": "SMSMessagesSent", "Category": "SMSOperational",
         "ResultType": "Succeeded", "ResultSignature": 202, "DurationMs": 100, "MessageId": "m1",
         "NumberType": "LongCodeNumber", "Country": "US", "OutgoingMessageLength": 10, "PhoneNumber": "+15550100001"},
        {"TimeGenerated": "2026-11-02T10:00:07Z", "OperationName": "SMSDeliveryReportsReceived",
         "ResultType": "Failed", "ResultSignature": "4006", "DeliveryAttempts": 2, "MessageId": "m1",
         "NumberType": "LongCodeNumber", "Country": "US"},
    ]
    eh = [
        {"time": "2026-11-02T10:00:00Z", "operationName": "SMSMessagesSent", "category": "SMSOperational",
         "resultType": "Succeeded", "resultSignature": "202", "durationMs": "100",
         "properties": {"MessageId": "m1", "NumberType": "LongCodeNumber", "Country": "US",
                        "OutgoingMessageLength": 10, "PhoneNumber": "+15550100001"}},
        {"time": "2026-11-02T10:00:07Z", "operationName": "SMSDeliveryReportsReceived", "category": "SMSOperational",
         "resultType": "Failed", "resultSignature": 4006,
         "properties": json.dumps({"DeliveryAttempts": 2, "MessageId": "m1", "NumberType": "LongCodeNumber",
                                   "Country": "US"})},
    ]
    (p1, m1), (p2, m2) = make(), make()
    p1.process(json.dumps(la).encode(), NOW)
    p2.process(body(*eh), NOW)
    for a, b in [(m1.operations, m2.operations), (m1.failures, m2.failures),
                 (m1.message_characters, m2.message_characters), (m1.records, m2.records)]:
        assert a.values == b.values and a.values
    for a, b in [(m1.delivery_latency, m2.delivery_latency), (m1.api_duration, m2.api_duration),
                 (m1.delivery_attempts, m2.delivery_attempts), (m1.record_age, m2.record_age)]:
        assert a.children == b.children and a.children
    assert m1.delivery_latency.children[("Failed", "LongCodeNumber", "paired", "unknown")][-1] == 7.0


# --- counting rules --------------------------------------------------------------------------


def test_failures_only_when_result_type_present_and_not_succeeded():
    p, m = make()
    p.process(body(
        sms(result="Succeeded", MessageId="a"),
        sms(result=None, MessageId="b"),
        sms(result="Failed", MessageId="c") | {"resultSignature": 500},
        sms(result="Canceled", MessageId="d"),
        sms(result="Weird", MessageId="e") | {"resultSignature": "not-a-code"},
    ), NOW)
    assert m.failures.values == {
        ("SMSMessagesSent", "500", "unknown", "unknown", "unknown"): 1,
        ("SMSMessagesSent", "other", "unknown", "unknown", "unknown"): 2,  # Canceled (no signature), Weird
    }
    assert m.operations.values == {
        ("SMSMessagesSent", "Succeeded", "unknown", "unknown", "unknown"): 1,
        ("SMSMessagesSent", "other", "unknown", "unknown", "unknown"): 2,  # missing result, Weird
        ("SMSMessagesSent", "Failed", "unknown", "unknown", "unknown"): 1,
        ("SMSMessagesSent", "Canceled", "unknown", "unknown", "unknown"): 1,
    }


def test_same_record_twice_is_one_duplicate_and_changes_nothing_else():
    record = sms(op="SMSDeliveryReportsReceived", MessageId="m1", DeliveryAttempts=1, NumberType="LongCodeNumber")
    p, m = make()
    p.process(body(record), NOW)
    snapshot = {f.name: dict(f.values) for f in (m.operations, m.failures, m.unmatched_reports, m.message_characters)}
    hist = {f.name: {k: list(v) for k, v in f.children.items()} for f in (m.delivery_attempts, m.record_age)}
    result = p.process(body(record), NOW + 1)
    assert (result.processed, result.duplicate) == (0, 1)
    assert outcomes(m) == {("SMSOperational", "processed"): 1, ("SMSOperational", "duplicate"): 1}
    assert snapshot == {f.name: dict(f.values) for f in (m.operations, m.failures, m.unmatched_reports, m.message_characters)}
    assert hist == {f.name: {k: list(v) for k, v in f.children.items()} for f in (m.delivery_attempts, m.record_age)}
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 1}


def test_usage_duplicates_by_record_id():
    p, m = make()
    p.process(body(usage("r1", 2), usage("r1", 2), usage("r2", 2)), NOW)
    assert outcomes(m) == {("Usage", "processed"): 2, ("Usage", "duplicate"): 1}
    assert m.usage_quantity.values == {("SMS", "Message", "unknown"): 4.0}


def test_records_without_id_are_never_duplicates():
    p, m = make()
    p.process(body(sms(), sms()), NOW)
    assert outcomes(m) == {("SMSOperational", "processed"): 2}
    assert sum(m.operations.values.values()) == 2


def test_duplicate_window_is_bounded():
    p, m = make(duplicates_max_entries=1)
    p.process(body(usage("r1"), usage("r2"), usage("r1")), NOW)
    assert outcomes(m) == {("Usage", "processed"): 3}


def test_skipped_and_invalid_are_counted_with_category():
    p, m = make()
    result = p.process(body(
        {"category": "ChatOperational", "operationName": "x"},
        {"category": "chatoperational", "operationName": "x"},
        sms() | {"durationMs": "fast"},
        usage(quantity=-1),
        {"operationName": "Mystery"},
        "not an object",
    ), NOW)
    assert (result.processed, result.skipped, result.invalid) == (0, 2, 4)
    assert outcomes(m) == {
        ("ChatOperational", "skipped"): 2,
        ("SMSOperational", "invalid"): 1,
        ("Usage", "invalid"): 1,
        ("unknown", "invalid"): 2,
    }
    assert result.invalid_reasons == [
        "durationMs input should be a valid number, unable to parse string as a number",
        "Quantity input should be greater than or equal to 0",
        "category is missing and cannot be inferred",
        "record is a JSON string, not an object",
    ]


def test_invalid_reasons_are_capped_but_count_is_exact():
    p, _ = make()
    result = p.process(body(*[usage(quantity=-1)] * (MAX_REASONS + 3)), NOW)
    assert result.invalid == MAX_REASONS + 3
    assert len(result.invalid_reasons) == MAX_REASONS


def test_category_label_is_bounded():
    p, m = make()
    p.process(body(*[{"category": f"Category{i}", "operationName": "x"} for i in range(30)]), NOW)
    categories = {category for category, _ in m.records.values}
    assert categories == {f"Category{i}" for i in range(20)} | {"other"}  # known categories take no slot
    assert m.records.values[("other", "skipped")] == 10
    p.process(body(sms()), NOW)
    assert ("SMSOperational", "processed") in m.records.values


def test_category_limit_from_settings():
    p, m = make(labels=LabelLimits(categories=3))
    p.process(body(*[{"category": f"C{i}", "operationName": "x"} for i in range(5)]), NOW)
    assert {c for c, _ in m.records.values} == {"C0", "C1", "C2", "other"}


def _vocabulary_records() -> list[dict]:
    """Records whose open-ended label values are all documented by ACS: more of them than the limits
    below admit on first sight, so first-N admission would depend on the order."""
    records = []
    for i, code in enumerate((400, 401, 429, 500, 503, 2000, 4001, 4004, 4006, 4020, 5001, 5002, 9999)):
        op = "SMSMessagesSent" if code < 1000 else "SMSDeliveryReportsReceived"
        records.append(sms(op=op, result="Failed", MessageId=f"m{i}", Country="US") | {"resultSignature": code})
    for i, (usage_type, unit_type) in enumerate((("SMS", "Message"), ("PSTN", "Minute"), ("Chat", "Message"),
                                                 ("NAT", "Megabyte"), ("sms", "message"))):
        records.append(usage(f"u{i}", usage_type=usage_type, unit_type=unit_type))
    for category in ("ChatOperational", "CallSummary", "EmailSendMailOperational", "RoomsOperational"):
        records.append({"category": category, "operationName": "x"})
    return records


@pytest.mark.parametrize("canonical", [True, False])
def test_two_replicas_fed_the_same_records_in_different_orders_agree_on_label_values(canonical):
    import random

    limits = LabelLimits(result_signatures=2, usage_types=1, unit_types=1, categories=1,
                         resources=["acs-prod", "ACS-Test"], resources_first_seen=0)
    records = _vocabulary_records()
    arm = "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/"
    for i, record in enumerate(records):  # two listed resources and one that is not (no first-N slot)
        record["resourceId"] = arm + ("ACS-PROD", "ACS-TEST", "ACS-STRAY")[i % 3]
    label_sets = []
    for seed in range(4):
        p, m = make(labels=limits)
        p.canonical = canonical
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        for record in shuffled:  # one record per body, so that the order is the arrival order
            p.process(body(record), NOW)
        label_sets.append((set(m.failures.values), set(m.usage_records.values), set(m.records.values)))
    assert all(labels == label_sets[0] for labels in label_sets[1:])
    failures, usage_pairs, records_keys = label_sets[0]
    assert {key[1] for key in failures} == {"400", "401", "429", "500", "503", "2000", "4001", "4004", "4006",
                                             "4020", "5001", "5002", "9999"}
    assert {pair[:2] for pair in usage_pairs} == {("SMS", "Message"), ("PSTN", "Minute"), ("Chat", "Message"),
                                                  ("NAT", "Megabyte")}
    assert {key[-1] for key in failures} | {pair[-1] for pair in usage_pairs} == {"acs-prod", "acs-test", "other"}
    assert {c for c, _ in records_keys} == {"SMSOperational", "Usage", "ChatOperational", "CallSummary",
                                            "EmailSendMailOperational", "RoomsOperational"}


def test_report_without_message_id_or_time_is_unmatched():
    p, m = make()
    p.process(body(
        sms(op="SMSDeliveryReportsReceived", result="Failed"),
        sms(op="SMSDeliveryReportsReceived", time=None, MessageId="m1"),
        sms(op="SMSDeliveryReportsReceived", time="garbage", MessageId="m2"),
    ), NOW)
    assert m.unmatched_reports.values == {("Failed", "unknown"): 1, ("Succeeded", "unknown"): 2}
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 0}
    assert m.operations.values[("SMSDeliveryReportsReceived", "Succeeded", "unknown", "unknown", "unknown")] == 2


def test_evicted_reports_are_unmatched_and_evicted_sends_are_not():
    p, m = make(correlation_max_entries=2)
    p.process(body(
        sms(op="SMSDeliveryReportsReceived", result="Failed", MessageId="r1"),
        sms(MessageId="s1"),
        sms(MessageId="s2"),  # evicts r1 (capacity)
        sms(MessageId="s3"),  # evicts s1
    ), NOW)
    assert m.unmatched_reports.values == {("Failed", "unknown"): 1}
    assert m.correlation_evictions.values == {("delivery_report", "capacity"): 1, ("sent", "capacity"): 1}
    assert p.correlator.pending() == {"sent": 2, "delivery_report": 0}


def test_expire_evicts_by_age_and_counts_unmatched():
    p, m = make(correlation_max_age_seconds=60)
    p.process(body(sms(op="SMSDeliveryReportsReceived", MessageId="r1"), sms(MessageId="s1")), NOW)
    p.expire(NOW + 60)
    assert m.unmatched_reports.values == {}
    p.expire(NOW + 61)
    assert m.unmatched_reports.values == {("Succeeded", "unknown"): 1}
    assert m.correlation_evictions.values == {("delivery_report", "age"): 1, ("sent", "age"): 1}
    assert len(p.correlator) == 0


def test_expire_forgets_duplicates():
    p, m = make(duplicates_max_age_seconds=10)
    p.process(body(usage("r1")), NOW)
    p.expire(NOW + 11)
    p.process(body(usage("r1")), NOW + 12)
    assert outcomes(m) == {("Usage", "processed"): 2}


def test_failed_send_is_not_correlated():
    p, m = make()
    p.process(body(sms(result="Failed", MessageId="m1"), sms(op="SMSDeliveryReportsReceived", MessageId="m1")), NOW)
    assert m.delivery_latency.children == {}
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 1}


def test_report_before_send_across_bodies():
    p, m = make()
    p.process(body(sms(op="SMSDeliveryReportsReceived", time="2026-11-02T10:00:30Z", MessageId="m1",
                       NumberType="ShortCodeNumber")), NOW)
    p.process(body(sms(time="2026-11-02T10:00:00Z", MessageId="m1")), NOW + 5)
    assert m.delivery_latency.count("Succeeded", "ShortCodeNumber", "paired", "unknown") == 1
    assert m.delivery_latency.children[("Succeeded", "ShortCodeNumber", "paired", "unknown")][-1] == 30.0


def test_record_age_not_observed_without_time():
    p, m = make()
    p.process(body(sms(time=None), sms(time="nonsense"), usage(time=None)), NOW)
    assert m.record_age.children == {}
    assert outcomes(m) == {("SMSOperational", "processed"): 2, ("Usage", "processed"): 1}
    p.process(body(sms(time="2026-11-02T10:00:00Z")), NOW)
    assert m.record_age.children[("SMSOperational",)][-1] == 3600.0


def test_record_age_is_clamped_at_zero_for_future_records():
    p, m = make()
    p.process(body(sms(time="2030-01-01T00:00:00Z")), NOW)
    assert m.record_age.children[("SMSOperational",)][-1] == 0.0
    assert m.record_age.count("SMSOperational") == 1


def test_one_bad_record_never_spoils_its_siblings():
    p, m = make()
    result = p.process(body(
        sms(Country="us", NumberType="longcodenumber"),
        {"category": "SMSOperational", "operationName": {"nested": [1, 2]}},
        None,
        [],
        sms(op="SMSMessagesReceived", IncomingMessageLength=5),
    ), NOW)
    assert (result.processed, result.invalid) == (2, 3)
    assert m.operations.values == {
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "US", "unknown"): 1,
        ("SMSMessagesReceived", "Succeeded", "unknown", "unknown", "unknown"): 1,
    }
    assert m.message_characters.values == {("incoming",): 5}


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"not json", DecodeError.INVALID_JSON),
        (b"[]", DecodeError.NOT_RECORDS),
        (b"\xff\xfe[]", DecodeError.ENCODING),
        (b"[" + b" " * 2000 + b"]", DecodeError.TOO_LARGE),
    ],
)
def test_decode_errors_counted_once(data, reason):
    p, m = make(max_body_bytes=1000)
    result = p.process(data, NOW, EventContext(partition="0", enqueued_time=NOW - 2))
    assert result.decode_error is reason and result.records == 0 and result.detail
    assert m.decode_errors.values == {(reason.value,): 1}
    assert m.records.values == {}
    assert m.events.values == {("0",): 1}
    assert m.event_age.count() == 1 and m.event_age.children[()][-1] == 2.0


def test_repaired_bodies_are_counted():
    p, m = make()
    result = p.process(b"{'records': [{'category': 'Usage', 'operationName': 'Usage', 'Quantity': 1}]}", NOW)
    assert result.repaired and result.processed == 1
    assert m.repaired_bodies.values == {(): 1}


def test_labels_are_bounded_with_hostile_values():
    p, m = make()
    records = [sms(op=f"SMS{i}", Country=f"X{i}", NumberType=f"T{i}") | {"resultType": f"R{i}"} for i in range(100)]
    p.process(body(*records), NOW)
    assert m.operations.values == {("other", "other", "other", "other", "unknown"): 100}
    p.process(body(*[usage(f"u{i}", usage_type=f"U{i}", unit_type=f"N{i}") for i in range(200)]), NOW)
    assert len(m.usage_records.values) == 51  # 50 admitted pairs + (other, other, unknown)
    assert m.usage_records.values[("other", "other", "unknown")] == 150


def test_partition_label_and_event_age():
    p, m = make()
    p.process(body(sms()), NOW, EventContext(partition="7", enqueued_time=NOW + 5))
    p.process(body(sms()), NOW, EventContext(partition=""))
    assert m.events.values == {("7",): 1, ("unknown",): 1}
    assert m.event_age.children[()][-1] == 0.0 and m.event_age.count() == 1


def test_pending_gauge_in_exposition():
    metrics = Metrics(PipelineSettings().buckets, "t")
    p = Pipeline(PipelineSettings(), metrics.domain)
    p.process(body(sms(MessageId="m1")), NOW)
    text = metrics.render().decode()
    assert 'acs_sms_correlation_pending{side="sent"} 1.0' in text
    assert 'acs_sms_correlation_pending{side="delivery_report"} 0.0' in text


# --- delivery latency from the MessageId (the send was seen by another replica) -----------------

SENT_ID = "Outgoing_20261102100000ff00e5c9-876d-4958-86e3-4637484fe5bd_noam"  # sent 2026-11-02 10:00:00 UTC


@pytest.mark.parametrize("canonical", [True, False])
def test_report_whose_send_is_elsewhere_takes_the_send_time_from_its_message_id(canonical):
    p, m = make()
    p.canonical = canonical
    p.process(body(
        # 10:00:12.25 - (10:00:00 + 0.5) = 11.75 s
        sms(op="SMSDeliveryReportsReceived", time="2026-11-02T10:00:12.25Z", MessageId=SENT_ID,
            NumberType="LongCodeNumber"),
        # 10:02:30 - 10:00:05.5 = 144.5 s, failed
        sms(op="SMSDeliveryReportsReceived", result="Failed", time="2026-11-02T10:02:30Z",
            MessageId=SENT_ID.replace("100000ff", "100005ff"), NumberType="TollFreeNumber"),
        # no send time in a bare GUID: unmatched once it ages out, as before
        sms(op="SMSDeliveryReportsReceived", time="2026-11-02T10:00:12Z", MessageId="ff00e5c9-876d-4958-86e3-4637484fe5bd"),
    ), NOW)
    latency = m.delivery_latency
    assert set(latency.children) == {("Succeeded", "LongCodeNumber", "message_id", "unknown"), ("Failed", "TollFreeNumber", "message_id", "unknown")}
    assert latency.children[("Succeeded", "LongCodeNumber", "message_id", "unknown")][-1] == 11.75
    assert latency.count("Succeeded", "LongCodeNumber", "message_id", "unknown") == 1
    assert latency.children[("Failed", "TollFreeNumber", "message_id", "unknown")][-1] == 144.5
    assert latency.children[("Failed", "TollFreeNumber", "message_id", "unknown")][:-1] == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]  # le=300
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 1}
    p.expire(NOW + 7201)
    assert m.unmatched_reports.values == {("Succeeded", "unknown"): 1}


@pytest.mark.parametrize("canonical", [True, False])
def test_the_exact_pair_wins_when_both_halves_meet(canonical):
    p, m = make()
    p.canonical = canonical
    p.process(body(sms(time="2026-11-02T10:00:00.75Z", MessageId=SENT_ID),
                   sms(op="SMSDeliveryReportsReceived", time="2026-11-02T10:00:12.25Z", MessageId=SENT_ID)), NOW)
    assert set(m.delivery_latency.children) == {("Succeeded", "unknown", "paired", "unknown")}
    assert m.delivery_latency.children[("Succeeded", "unknown", "paired", "unknown")][-1] == 11.5


@pytest.mark.parametrize("canonical", [True, False])
def test_latency_from_message_id_can_be_switched_off(canonical):
    p, m = make(latency_from_message_id=False)
    p.canonical = canonical
    p.process(body(sms(op="SMSDeliveryReportsReceived", time="2026-11-02T10:00:12.25Z", MessageId=SENT_ID)), NOW)
    assert m.delivery_latency.children == {}
    assert p.correlator.pending() == {"sent": 0, "delivery_report": 1}


# --- absurd values never reach a sum ----------------------------------------------------------


@pytest.mark.parametrize("canonical", [True, False])
def test_quantity_1e308_twice_is_invalid_and_every_sum_stays_finite(canonical):
    import math

    p, m = make()
    p.canonical = canonical
    bodies = [
        body(usage("big-1", quantity=1e308), usage("ok-1", quantity=2)),
        body(usage("big-2", quantity=1e308), sms(durationMs=1.7e308, MessageId="m-1"),
             sms(op="SMSDeliveryReportsReceived", MessageId="m-2", DeliveryAttempts=10**7)),
        body(usage("ok-2", quantity=3), sms(durationMs=120, MessageId="m-3")),
    ]
    results = [p.process(b, NOW) for b in bodies]
    assert [r.invalid for r in results] == [1, 3, 0]
    assert results[1].invalid_reasons == [
        "Quantity input should be less than or equal to 1000000000",
        "durationMs input should be less than or equal to 259200000",
        "DeliveryAttempts input should be less than or equal to 1000000",
    ]
    assert m.usage_quantity.values == {("SMS", "Message", "unknown"): 5.0}
    assert m.usage_records.values == {("SMS", "Message", "unknown"): 2.0}
    assert m.records.values == {("Usage", "processed"): 2, ("Usage", "invalid"): 2,
                                ("SMSOperational", "invalid"): 2, ("SMSOperational", "processed"): 1}
    assert m.api_duration.children[("SMSMessagesSent",)][-1] == pytest.approx(0.12)
    for family in (m.api_duration, m.delivery_attempts, m.record_age):
        for child in family.children.values():
            assert all(math.isfinite(v) for v in child)
    for family in (m.usage_quantity, m.usage_records, m.message_characters, m.operations):
        assert all(math.isfinite(v) for v in family.values.values())


@pytest.mark.parametrize("canonical", [True, False])
def test_series_budget_per_family(canonical):
    p, m = make(labels=LabelLimits(series_per_family=5))
    p.canonical = canonical
    countries = ["US", "CA", "GB", "FR", "DE", "IT", "ES", "NL", "BE", "CH"]
    p.process(body(*[sms(Country=c, NumberType="LongCodeNumber") for c in countries]), NOW)
    p.process(body(*[sms(Country=c, NumberType="LongCodeNumber") for c in countries]), NOW)  # same again
    admitted = {("SMSMessagesSent", "Succeeded", "LongCodeNumber", c, "unknown"): 2.0 for c in countries[:5]}
    assert m.operations.values == {**admitted, ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "other", "other"): 10.0}
    assert sum(m.operations.values.values()) == 20  # every record still counted
    assert m.series_folded.values == {("acs_sms_operations",): 10.0}
    p.process(body(*[usage(f"u{i}", usage_type=f"U{i}", unit_type="Message", quantity=2) for i in range(8)]), NOW)
    assert len(m.usage_records.values) == 6 and m.usage_records.values[("other", "other", "other")] == 3
    assert m.usage_quantity.values[("other", "other", "other")] == 6
    assert m.series_folded.get("acs_usage_records") == m.series_folded.get("acs_usage_quantity") == 3


@pytest.mark.parametrize("canonical", [True, False])
def test_sender_numbers_are_labels_only_when_listed(canonical):
    arm = "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-PROD"
    records = [
        sms(PhoneNumber="+18445791704") | {"resourceId": arm},
        sms(PhoneNumber=" +18445791704 ") | {"resourceId": arm},  # padded: the general decoder strips it
        sms(op="SMSDeliveryReportsReceived", result="Failed", PhoneNumber="+18335550100"),
        sms(PhoneNumber="+15550100001"),  # not listed: other, never its own value
        sms(PhoneNumber="null"),  # a null spelling: no sender
        sms(),
    ]
    p, m = make(labels=LabelLimits(senders=["+1 844 579 1704", "+1 (833) 555-0100"]))
    p.canonical = canonical
    p.process(body(*records), NOW)
    assert m.sender_operations.values == {
        ("SMSMessagesSent", "Succeeded", "acs-prod", "+18445791704"): 2,
        ("SMSDeliveryReportsReceived", "Failed", "unknown", "+18335550100"): 1,
        ("SMSMessagesSent", "Succeeded", "unknown", "other"): 1,
        ("SMSMessagesSent", "Succeeded", "unknown", "unknown"): 2,
    }
    assert "+1555" not in _render(m)
    # none listed (the default): the family stays empty
    p, m = make()
    p.canonical = canonical
    p.process(body(*records), NOW)
    assert m.sender_operations.values == {} and sum(m.operations.values.values()) == 6


def _render(m: DomainMetrics) -> str:
    out: list[str] = []
    m.collector.write(out, False)
    return "".join(out)
