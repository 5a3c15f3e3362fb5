"""Property-based tests: nothing thrown at the core raises, every body is accounted for, labels stay bounded."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.config import LabelLimits, PipelineSettings
from consumer.decode import decode_body
from consumer.labels import (
    CATEGORIES,
    DOCUMENTED_SIGNATURES,
    ISO_COUNTRIES,
    NUMBER_TYPES,
    OTHER,
    RESULTS,
    SMS_OPERATIONS,
    UNIT_TYPES,
    UNKNOWN,
    USAGE_TYPES,
    looks_like_name,
)
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline
from consumer.records import Invalid, Skipped, SmsOperational, Usage
from tests.crafted import SHAPES
from tests.models import normalise

NOW = 1_800_000_000.0
LIMIT = 64 * 1024
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nanish = st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "null", "None", "", " ", "1e400", "-0", "0x10"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), nanish,
)
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=12)

FIELDS = ["time", "timeStamp", "TimeGenerated", "category", "Category", "operationName", "OPERATIONNAME",
          "resultType", "resultSignature", "durationMs", "NumberType", "Country", "MessageId", "DeliveryAttempts",
          "OutgoingMessageLength", "IncomingMessageLength", "RecordId", "UsageType", "UnitType", "Quantity",
          "PhoneNumber", "CorrelationId", "properties"]
field_values = st.one_of(
    scalars, json_values,
    st.sampled_from(["SMSOperational", "Usage", "ChatOperational", "smsoperational", *SMS_OPERATIONS, *RESULTS,
                     *NUMBER_TYPES, "US", "de", "2026-11-02T10:00:00Z", "11/02/2026 10:00:05", "2026-11-02T10:00:00.1234567",
                     "0001-01-01T00:00:00+01:00", "202", "4006", "m1", "m2", "r1", "SMS", "Message"]),
    st.integers(0, 5000).map(str),
)
records = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=12)
record_lists = st.lists(st.one_of(records, json_values), min_size=0, max_size=8)


def make_pipeline(**overrides):
    metrics = Metrics(PipelineSettings().buckets, "t")
    return Pipeline(PipelineSettings(max_body_bytes=LIMIT, **overrides), metrics.domain), metrics


def totals(metrics) -> tuple[float, float]:
    domain = metrics.domain
    return sum(domain.decode_errors.values.values()), sum(domain.records.values.values())


def check_accounting(pipeline, metrics, data: bytes) -> None:
    before_errors, before_records = totals(metrics)
    result = pipeline.process(data, NOW, EventContext(partition="0", enqueued_time=NOW - 1))
    after_errors, after_records = totals(metrics)
    if result.decode_error is not None:
        assert after_errors - before_errors == 1
        assert after_records == before_records
        assert (result.processed, result.invalid, result.skipped, result.duplicate) == (0, 0, 0, 0)
    else:
        assert after_errors == before_errors
        decoded = decode_body(data, LIMIT)
        n = len(decoded.records)
        assert n > 0 and result.records == n
        assert result.processed + result.invalid + result.skipped + result.duplicate == n
        assert after_records - before_records == n


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_are_accounted(data):
    decoded = decode_body(data, LIMIT)
    assert (decoded.error is None) == bool(decoded.records)
    pipeline, metrics = make_pipeline()
    check_accounting(pipeline, metrics, data)


@FAST
@given(json_values, st.sampled_from(["plain", "envelope", "bom", "single-quoted"]))
def test_arbitrary_json_values_never_raise_and_are_accounted(value, form):
    text = json.dumps(value)
    if form == "envelope":
        text = json.dumps({"records": value})
    elif form == "single-quoted":
        text = text.replace('"', "'")
    data = text.encode("utf-8", "surrogatepass")
    if form == "bom":
        data = b"\xef\xbb\xbf" + data
    pipeline, metrics = make_pipeline()
    check_accounting(pipeline, metrics, data)


def correlation_record(side: str, message: int, seconds: int, result: str) -> dict:
    """A send or a delivery report of one of eight messages, near NOW: sends and reports meet, wait and
    overflow the small correlation window of the test below."""
    time = datetime.fromtimestamp(NOW - 3600 + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    operation = "SMSMessagesSent" if side == "sent" else "SMSDeliveryReportsReceived"
    return {"time": time, "category": "SMSOperational", "operationName": operation, "resultType": result,
            "resultSignature": 202 if side == "sent" else 2000, "durationMs": 10,
            "properties": {"MessageId": f"m-{message}", "NumberType": "LongCodeNumber", "Country": "US"}}


correlation_records = st.builds(correlation_record, st.sampled_from(["sent", "report"]), st.integers(0, 7),
                                st.integers(0, 600), st.sampled_from(["Succeeded", "Succeeded", "Failed"]))


def test_record_like_bodies_are_accounted_across_bodies():
    """Bodies of sends and reports sharing message ids (with junk records among them) keep the
    accounting exact and the correlation window within its 5 entries, whatever the order. The reach
    counters make the test fail if the examples stop filling the window or pairing."""
    reach: Counter[str] = Counter()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.lists(correlation_records, min_size=4, max_size=12),
                              st.lists(st.one_of(records, json_values), max_size=3)), min_size=1, max_size=4))
    def check(parts):
        bodies = [sms + junk for sms, junk in parts]
        pipeline, metrics = make_pipeline(correlation_max_entries=5, duplicates_max_entries=5)
        full = False
        for i, records_ in enumerate(bodies):
            check_accounting(pipeline, metrics, json.dumps({"records": records_}).encode("utf-8", "surrogatepass"))
            pending = pipeline.correlator.pending()
            full = full or len(pipeline.correlator) == 5
            assert sum(pending.values()) == len(pipeline.correlator) <= 5
            assert min(pending.values()) >= 0
            pipeline.expire(NOW + i * 1000)
        d = metrics.domain
        reach["examples"] += 1
        reach["window full"] += full
        reach["paired"] += any("paired" in key for key in d.delivery_latency.children)
        reach["evicted"] += bool(d.correlation_evictions.values)

    check()
    n = reach["examples"]
    assert n >= 30, reach
    for what, floor in (("window full", 0.2), ("paired", 0.3), ("evicted", 0.2)):
        assert reach[what] >= floor * n, f"only {reach[what]} of {n} examples reached {what}: {dict(reach)}"


# --- valid records and hostile variants of them --------------------------------------------------
# Random dicts almost never make a valid record, so a property about what valid records count cannot
# fail on them. These strategies draw records in the two shapes that arrive (the Event Hubs common
# schema and the Log Analytics columns) that the pipeline counts, then vary the open-ended fields.

PHONE = "+15550100999"  # a phone number planted in open-ended fields: it must never become a label value
iso_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z")
open_text = st.one_of(st.text(min_size=1, max_size=12), st.just(PHONE), st.just("192.0.2.7"),
                      st.just("Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_noam"))
signatures = st.one_of(st.sampled_from([200, 202, 400, 401, 429, 500, 2000, 4001, 4006, 5000, 9999]),
                       st.integers(100, 99999), st.integers(100, 99999).map(str), open_text)


def sms_record(shape: str, operation: str, result: str, signature, number_type: str, country_: str,
               duration, time: str, resource_id: str | None = None) -> dict:
    details = {"PhoneNumber": PHONE, "NumberType": number_type, "Country": country_, "DeliveryAttempts": 1,
               "MessageId": "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_noam",
               "OutgoingMessageLength": 20}
    if shape == "eventhubs":
        return {"time": time, "category": "SMSOperational", "operationName": operation, "resultType": result,
                "resultSignature": signature, "durationMs": duration, "callerIpAddress": "192.0.2.1",
                "resourceId": resource_id, "properties": details}
    return {"TimeGenerated": time, "Category": "SMSOperational", "OperationName": operation, "ResultType": result,
            "ResultSignature": signature, "DurationMs": duration, "CallerIpAddress": "192.0.2.1",
            "_ResourceId": resource_id, **details}


def usage_record(shape: str, usage_type: str, unit_type: str, quantity, time: str, record_id: str,
                 resource_id: str | None = None) -> dict:
    if shape == "eventhubs":
        return {"time": time, "category": "Usage", "operationName": "Usage", "resourceId": resource_id,
                "properties": {"RecordId": record_id, "UsageType": usage_type, "UnitType": unit_type,
                               "Quantity": quantity}}
    return {"TimeGenerated": time, "Category": "Usage", "OperationName": "Usage", "RecordId": record_id,
            "_ResourceId": resource_id, "UsageType": usage_type, "UnitType": unit_type, "Quantity": quantity}


#: Values every replica admits whatever the order; first-N admission bounds only the others.
KNOWN_SIGNATURES, KNOWN_USAGE, KNOWN_UNITS = frozenset(DOCUMENTED_SIGNATURES), frozenset(USAGE_TYPES), frozenset(UNIT_TYPES)

shapes = st.sampled_from(["eventhubs", "log-analytics"])
ARM = "/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/"
LISTED_RESOURCES = ("acs-prod", "acs-test")
resource_ids = st.one_of(st.none(), st.sampled_from([ARM + "ACS-PROD", ARM.lower() + "acs-test", ARM[1:] + "ACS-EU"]),
                         open_text, open_text.map(lambda text: ARM + text))
valid_sms = st.builds(
    sms_record, shapes, st.one_of(st.sampled_from(SMS_OPERATIONS), open_text),
    st.one_of(st.sampled_from(["Succeeded", "Failed", "Failed", "Canceled"]), open_text), signatures,
    st.one_of(st.sampled_from(NUMBER_TYPES), open_text), st.one_of(st.sampled_from(["US", "de", "FR", "XX"]), open_text),
    st.one_of(st.integers(0, 60_000), st.integers(0, 60_000).map(str)), iso_times, resource_ids)
valid_usage = st.builds(
    usage_record, shapes, st.one_of(st.sampled_from(["SMS", "PSTN", "Chat"]), open_text),
    st.one_of(st.sampled_from(["Message", "Minute", "Megabyte"]), open_text),
    st.one_of(st.integers(0, 1000), st.floats(0, 1000), st.integers(0, 1000).map(str)), iso_times,
    st.uuids().map(str), resource_ids)


def test_label_cardinality_stays_within_the_contract():
    """Bodies of valid SMS and Usage records, plus a hostile copy with unique open-ended values: every
    label stays in its bound. The reach counters make the test fail if the strategies stop producing
    records that reach the bounded families (what the assertions are about)."""
    reach: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(valid_sms, valid_usage, st.lists(st.one_of(valid_sms, valid_usage), max_size=40))
    def check(sms, usage, more):
        raws = [sms, usage, *more]
        limits = LabelLimits(result_signatures=3, usage_types=3, unit_types=3, categories=4,
                             resources=list(LISTED_RESOURCES), resources_first_seen=3)
        pipeline, metrics = make_pipeline(labels=limits)
        hostile = []
        for i, r in enumerate([*raws, *[sms] * 4, *[usage] * 4]):  # at least 5 new values of each
            r = json.loads(json.dumps(r))
            inner = r.get("properties", r)
            if "UsageType" in inner:
                inner.update(UsageType=f"U{i}", UnitType=f"N{i}")
            else:
                r["resultSignature" if "time" in r else "ResultSignature"] = 4100 + i
                r["resultType" if "time" in r else "ResultType"] = "Failed"
            r["time" if "time" in r else "TimeGenerated"] = f"2026-11-02T10:{i // 60:02d}:{i % 60:02d}Z"
            r["resourceId" if "time" in r else "_ResourceId"] = f"{ARM}ACS-R{i}"
            hostile.append(r)
        hostile.append({"time": "2026-11-02T10:00:00Z", "category": "Cat-new", "operationName": "x"})
        for chunk in (raws, hostile):
            pipeline.process(json.dumps({"records": chunk}).encode("utf-8", "surrogatepass"), NOW)
        d = metrics.domain
        reach["examples"] += 1
        reach["operations"] += bool(d.operations.values)
        reach["failures"] += bool(d.failures.values)
        reach["usage"] += bool(d.usage_records.values)
        reach["signatures over the limit"] += len({k[1] for k in d.failures.values}) > 3 or OTHER in {k[1] for k in d.failures.values}
        reach["usage types over the limit"] += OTHER in {k[0] for k in d.usage_records.values}
        resources = {k[-1] for family in (d.operations, d.failures, d.unmatched_reports, d.usage_records,
                                          d.usage_quantity) for k in family.values}
        resources |= {k[-1] for k in d.delivery_latency.children}
        reach["resources over the limit"] += OTHER in resources
        assert len(resources - {OTHER, UNKNOWN} - set(LISTED_RESOURCES)) <= 3
        assert all(r in (OTHER, UNKNOWN, *LISTED_RESOURCES) or looks_like_name(r) and r == r.lower() for r in resources)
        for operation, result, number_type, country_, _ in d.operations.values:
            assert operation in (*SMS_OPERATIONS, OTHER)
            assert result in (*RESULTS, OTHER)
            assert number_type in (*NUMBER_TYPES, OTHER, UNKNOWN)
            assert country_ in ISO_COUNTRIES | {OTHER, UNKNOWN}
        signatures_ = {key[1] for key in d.failures.values}
        assert len(signatures_ - {OTHER} - KNOWN_SIGNATURES) <= 3
        assert all(s == OTHER or (s.isdigit() and s.isascii()) for s in signatures_)
        assert len({k[0] for k in d.usage_records.values} - {OTHER} - KNOWN_USAGE) <= 3
        assert len({k[1] for k in d.usage_records.values} - {OTHER} - KNOWN_UNITS) <= 3
        assert len({k[0] for k in d.records.values} - {OTHER, UNKNOWN} - set(CATEGORIES)) <= 4
        assert {k[1] for k in d.records.values} <= {"processed", "invalid", "skipped", "duplicate"}
        assert {k[0] for k in d.api_duration.children} <= {*SMS_OPERATIONS, OTHER}
        text = metrics.render().decode()
        # the planted values themselves (a bare "Outgoing_" is a name-like value Hypothesis may draw)
        assert "+1555" not in text and "192.0.2" not in text and "Outgoing_2023" not in text

    check()
    n = reach["examples"]
    assert n >= 30, reach
    for what, floor in (("operations", 0.8), ("failures", 0.8), ("usage", 0.8),
                        ("signatures over the limit", 0.8), ("usage types over the limit", 0.8),
                        ("resources over the limit", 0.8)):
        assert reach[what] >= floor * n, f"only {reach[what]} of {n} examples reached {what}: {dict(reach)}"


def test_normalise_never_raises_and_keeps_no_pii():
    """Random dicts and JSON values, and valid SMS and Usage records (random dicts almost never make
    one): normalise never raises, typed records keep no phone number or IP in their repr or dump,
    invalid ones none in their reason. The reach counters make the test fail if the draws stop
    reaching the typed and the invalid branch."""
    reach: Counter[str] = Counter()

    @FAST
    @given(st.one_of(records, json_values, valid_sms, valid_usage))
    def check(raw):
        # valid_sms's phone number and IP fields get values no other field holds (open-ended fields may
        # carry PHONE too, kept there: labels are bounded later), so finding them in the record is a leak
        planted = []
        if isinstance(raw, dict):
            raw = json.loads(json.dumps(raw))
            for fields in (raw, raw.get("properties")):
                for key, own in (("PhoneNumber", "+15550100777"), ("callerIpAddress", "198.51.100.77"),
                                 ("CallerIpAddress", "198.51.100.77")):
                    if isinstance(fields, dict) and fields.get(key) in (PHONE, "192.0.2.1"):
                        fields[key] = own
                        planted.append(own)
        outcome = normalise(raw)
        reach["examples"] += 1
        assert type(outcome) in (SmsOperational, Usage, Skipped, Invalid)
        if isinstance(outcome, (SmsOperational, Usage)):
            reach["typed"] += 1
            assert outcome.time is None or outcome.time.utcoffset().total_seconds() == 0
            assert (outcome.time is None) == (outcome.time_problem is not None)
            for name in ("duration_ms", "quantity"):
                v = getattr(outcome, name, None)
                assert v is None or (math.isfinite(v) and v >= 0)
            text = repr(outcome) + json.dumps(outcome.model_dump(), default=str)
            reach["pii checked"] += bool(planted)
            for secret in planted:
                assert secret not in text, (secret, text)
        if isinstance(outcome, Invalid):
            reach["invalid"] += 1
            assert outcome.reason
            for key in ("PhoneNumber", "MessageId"):
                secret = raw.get(key) if isinstance(raw, dict) else None
                if isinstance(secret, str) and len(secret.strip()) >= 6:
                    assert secret.strip() not in outcome.reason

    check()
    n = reach["examples"]
    assert n >= 30, reach
    for what, floor in (("typed", 0.15), ("pii checked", 0.05), ("invalid", 0.15)):
        assert reach[what] >= floor * n, f"only {reach[what]} of {n} examples reached {what}: {dict(reach)}"


# Bodies crafted against the algorithms (tests/crafted.py), small, and cut or wrapped in other text.
crafted = st.builds(
    lambda name, size, head, tail, cut: (head + SHAPES[name](size) + tail)[cut:],
    st.sampled_from(sorted(SHAPES)), st.integers(1, 4096),
    st.sampled_from([b"", b"[", b'{"records": [', b"'", b'"', b"\\", b"NaN,", b"\xef\xbb\xbf"]),
    st.sampled_from([b"", b"]", b"]}", b"'", b'"', b"\\", b"\n"]),
    st.integers(0, 3),
)


@FAST
@given(crafted)
def test_crafted_bodies_never_raise_and_are_accounted(data):
    decoded = decode_body(data, LIMIT)
    assert (decoded.error is None) == bool(decoded.records)
    assert decoded.error is None or decoded.detail
    pipeline, metrics = make_pipeline()
    check_accounting(pipeline, metrics, data)


@FAST
@given(crafted, st.sampled_from(["SMSOperational", "Usage"]))
def test_crafted_properties_strings_never_raise(data, category):
    raw = {"time": "2026-11-02T10:00:00Z", "category": category, "operationName": "SMSMessagesSent",
           "properties": data.decode("utf-8", "replace")}
    outcome = normalise(raw)
    assert type(outcome) in (SmsOperational, Usage, Skipped, Invalid)
    if isinstance(outcome, Invalid):
        assert outcome.reason
