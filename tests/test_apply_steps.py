"""The apply steps: what a record admits to a first-seen label set, and when a series is created."""

from __future__ import annotations

import json

import pytest

from consumer.config import LabelLimits, PipelineSettings
from consumer.metrics import DomainMetrics
from consumer.pipeline import Pipeline

NOW = 1_793_613_000.0  # 2026-11-02T10:30:00Z


def _body(*records: dict) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def _usage(record_id: str, unit_type: str) -> dict:
    return {"time": "2026-11-02T10:00:00Z", "category": "Usage", "operationName": "Usage",
            "properties": {"RecordId": record_id, "UsageType": "SMS", "UnitType": unit_type, "Quantity": 1}}


def _pipeline(canonical: bool, **limits: int) -> tuple[Pipeline, DomainMetrics]:
    settings = PipelineSettings(labels=LabelLimits(**limits))
    metrics = DomainMetrics(settings.buckets)
    pipeline = Pipeline(settings, metrics)
    pipeline.canonical = canonical
    return pipeline, metrics


@pytest.mark.parametrize("canonical", [True, False])
def test_a_duplicate_takes_no_first_seen_label_slot(canonical: bool) -> None:
    pipeline, m = _pipeline(canonical, unit_types=1)
    pipeline.process(_body(_usage("r1", "Message")), NOW)
    result = pipeline.process(_body(_usage("r1", "Bundle")), NOW)  # the same record: its unit type is not counted
    assert result.duplicate == 1
    pipeline.process(_body(_usage("r2", "Segment")), NOW)
    assert set(m.usage_records.values) == {("SMS", "Message", "unknown"), ("SMS", "Segment", "unknown")}


@pytest.mark.parametrize("canonical", [True, False])
def test_series_appear_when_first_updated_not_when_a_record_is_bound(canonical: bool) -> None:
    pipeline, m = _pipeline(canonical)
    untimed = {"category": "SMSOperational", "operationName": "SMSMessagesSent", "resultType": "Succeeded",
               "properties": {"MessageId": "m1"}}
    pipeline.process(_body(untimed, untimed), NOW)  # no time: no age; the second is a duplicate
    assert m.record_age.children == {}
    assert m.api_duration.children == {} and m.failures.values == {}
    assert dict(m.records.values) == {("SMSOperational", "processed"): 1.0, ("SMSOperational", "duplicate"): 1.0}
