"""Property-based tests: nothing thrown at the core raises, every body is accounted for, labels stay bounded."""

from __future__ import annotations

import json
import math

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
)
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline
from consumer.records import Invalid, Skipped, SmsOperational, Usage, normalise

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


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_lists, min_size=1, max_size=4))
def test_record_like_bodies_are_accounted_across_bodies(bodies):
    pipeline, metrics = make_pipeline(correlation_max_entries=5, duplicates_max_entries=5)
    for i, records_ in enumerate(bodies):
        check_accounting(pipeline, metrics, json.dumps({"records": records_}).encode("utf-8", "surrogatepass"))
        pipeline.expire(NOW + i * 1000)
        pending = pipeline.correlator.pending()
        assert sum(pending.values()) == len(pipeline.correlator) <= 5
        assert min(pending.values()) >= 0


@FAST
@given(st.one_of(records, json_values))
def test_normalise_never_raises_and_keeps_no_pii(raw):
    outcome = normalise(raw)
    assert type(outcome) in (SmsOperational, Usage, Skipped, Invalid)
    if isinstance(outcome, (SmsOperational, Usage)):
        assert outcome.time is None or outcome.time.utcoffset().total_seconds() == 0
        assert (outcome.time is None) == (outcome.time_problem is not None)
        for name in ("duration_ms", "quantity"):
            v = getattr(outcome, name, None)
            assert v is None or (math.isfinite(v) and v >= 0)
    if isinstance(outcome, Invalid):
        assert outcome.reason
        for key in ("PhoneNumber", "MessageId"):
            secret = raw.get(key) if isinstance(raw, dict) else None
            if isinstance(secret, str) and len(secret.strip()) >= 6:
                assert secret.strip() not in outcome.reason


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, min_size=1, max_size=60))
def test_label_cardinality_stays_within_the_contract(raws):
    limits = LabelLimits(result_signatures=3, usage_types=3, unit_types=3, categories=4)
    pipeline, metrics = make_pipeline(labels=limits)
    # Feed hostile variations too: every record with unique values in the open-ended fields.
    hostile = [dict(r, UsageType=f"U{i}", UnitType=f"N{i}", resultSignature=str(1000 + i), category=f"Cat{i}")
               for i, r in enumerate(raws)]
    for chunk in (raws, hostile):
        pipeline.process(json.dumps({"records": chunk}).encode("utf-8", "surrogatepass"), NOW)
    d = metrics.domain
    for operation, result, number_type, country in d.operations.values:
        assert operation in (*SMS_OPERATIONS, OTHER)
        assert result in (*RESULTS, OTHER)
        assert number_type in (*NUMBER_TYPES, OTHER, UNKNOWN)
        assert country in ISO_COUNTRIES | {OTHER, UNKNOWN}
    signatures = {key[1] for key in d.failures.values}
    # the values ACS documents take no first-N slot; the others are bounded by the limits
    assert len(signatures - {OTHER} - set(DOCUMENTED_SIGNATURES)) <= 3
    assert all(s == OTHER or (s.isdigit() and s.isascii()) for s in signatures)
    assert len({k[0] for k in d.usage_records.values} - {OTHER} - set(USAGE_TYPES)) <= 3
    assert len({k[1] for k in d.usage_records.values} - {OTHER} - set(UNIT_TYPES)) <= 3
    assert len({k[0] for k in d.records.values} - {OTHER, UNKNOWN} - set(CATEGORIES)) <= 4
    assert {k[1] for k in d.records.values} <= {"processed", "invalid", "skipped", "duplicate"}
    for family in (d.api_duration, d.delivery_attempts):
        assert all(len(key) == 1 for key in family.children)
    assert {k[0] for k in d.api_duration.children} <= {*SMS_OPERATIONS, OTHER}
    text = metrics.render().decode()
    assert "+1555" not in text
