"""consumer.metrics: the exposition matches the contract of metrics.md."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import Buckets
from consumer.metrics import FastCounter, FastHistogram, Metrics

# family → (type, label names) exactly as /work/shared/reference/metrics.md states them.
CONTRACT = {
    "acs_sms_operations": ("counter", {"operation", "result", "number_type", "country"}),
    "acs_sms_failures": ("counter", {"operation", "result_signature", "number_type", "country"}),
    "acs_sms_api_duration_seconds": ("histogram", {"operation"}),
    "acs_sms_delivery_latency_seconds": ("histogram", {"result", "number_type"}),
    "acs_sms_delivery_reports_unmatched": ("counter", {"result"}),
    "acs_sms_delivery_attempts": ("histogram", {"result"}),
    "acs_sms_message_characters": ("counter", {"direction"}),
    "acs_usage_quantity": ("counter", {"usage_type", "unit_type"}),
    "acs_usage_records": ("counter", {"usage_type", "unit_type"}),
    "acs_consumer_events": ("counter", {"partition"}),
    "acs_consumer_records": ("counter", {"category", "outcome"}),
    "acs_consumer_decode_errors": ("counter", {"reason"}),
    "acs_consumer_dead_letters": ("counter", {"outcome"}),
    "acs_consumer_checkpoints": ("counter", {"partition", "outcome"}),
    "acs_consumer_partition_lag_events": ("gauge", {"partition"}),
    "acs_consumer_event_age_seconds": ("histogram", set()),
    "acs_consumer_record_age_seconds": ("histogram", {"category"}),
    "acs_consumer_last_event_timestamp_seconds": ("gauge", {"partition"}),
    "acs_consumer_owned_partitions": ("gauge", set()),
    "acs_consumer_errors": ("counter", {"kind"}),
    "acs_consumer_build_info": ("gauge", {"version"}),
}


def populated() -> Metrics:
    """A Metrics with one child in every family, so that label names show in the exposition."""
    m = Metrics(Buckets(), "1.2.3")
    d = m.domain
    for family in (d.operations, d.failures, d.unmatched_reports, d.message_characters, d.usage_quantity,
                   d.usage_records, d.events, d.records, d.decode_errors, d.correlation_evictions):
        family.inc(tuple(f"v{i}" for i in range(len(family.labelnames))))
    d.repaired_bodies.inc(())
    for family in (d.api_duration, d.delivery_latency, d.delivery_attempts, d.record_age, d.event_age):
        family.observe(tuple(f"v{i}" for i in range(len(family.labelnames))), 1.0)
    c = m.consumer
    c.checkpoints.labels("0", "ok").inc()
    c.dead_letters.labels("written").inc()
    c.partition_lag.labels("0").set(5)
    c.last_event_timestamp.labels("0").set(1.0)
    c.owned_partitions.set(2)
    c.errors.labels("OSError").inc()
    c.batch_duration.observe(0.01)
    return m


def parse(m: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_every_contract_family_has_its_type_and_labels():
    families = parse(populated())
    for name, (kind, labels) in CONTRACT.items():
        assert name in families, name
        family = families[name]
        assert family.type == kind, name
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_contract_families_present_even_before_any_record():
    text = Metrics(Buckets(), "1.2.3").render().decode()
    for name, (kind, _) in CONTRACT.items():
        exposed = name + "_total" if kind == "counter" else name
        assert f"# TYPE {exposed} {kind}\n" in text, exposed


def test_no_created_series():
    text = populated().render().decode()
    assert "_created" not in text


def test_build_info_is_one_with_version():
    families = parse(Metrics(Buckets(), "9.9.9"))
    [sample] = families["acs_consumer_build_info"].samples
    assert sample.labels == {"version": "9.9.9"} and sample.value == 1.0


def test_counter_values_and_total_suffix():
    m = Metrics(Buckets(), "x")
    m.domain.usage_quantity.inc(("SMS", "Message"), 2.5)
    m.domain.usage_quantity.inc(("SMS", "Message"), 1)
    assert m.domain.usage_quantity.get("SMS", "Message") == 3.5
    assert m.domain.usage_quantity.get("PSTN", "Minute") == 0.0
    [sample] = parse(m)["acs_usage_quantity"].samples
    assert sample.name == "acs_usage_quantity_total"
    assert sample.labels == {"usage_type": "SMS", "unit_type": "Message"} and sample.value == 3.5


def histogram_samples(m: Metrics, name: str, labels: dict) -> dict[str, float]:
    out = {}
    for sample in parse(m)[name].samples:
        rest = {k: v for k, v in sample.labels.items() if k != "le"}
        if rest != labels:
            continue
        suffix = sample.name[len(name):]
        out[f"le={sample.labels['le']}" if suffix == "_bucket" else suffix] = sample.value
    return out


def test_histogram_bucket_semantics():
    m = Metrics(Buckets(delivery_attempts=[1, 2, 3, 5, 10]), "x")
    h = m.domain.delivery_attempts
    for value in (0, 1, 1, 2, 2.5, 5, 10, 10.0001, 99):
        h.observe(("Succeeded",), value)
    assert h.count("Succeeded") == 9
    assert h.count("Failed") == 0
    assert histogram_samples(m, "acs_sms_delivery_attempts", {"result": "Succeeded"}) == {
        "le=1.0": 3.0,  # 0, 1, 1 — a value equal to a bound falls in that bucket
        "le=2.0": 4.0,
        "le=3.0": 5.0,
        "le=5.0": 6.0,
        "le=10.0": 7.0,
        "le=+Inf": 9.0,
        "_count": 9.0,
        "_sum": pytest.approx(0 + 1 + 1 + 2 + 2.5 + 5 + 10 + 10.0001 + 99),
    }


def test_histogram_fractional_bounds_render_like_prometheus_client():
    m = Metrics(Buckets(api_duration_seconds=[0.005, 0.25, 1, 30]), "x")
    m.domain.api_duration.observe(("SMSMessagesSent",), 0.005)
    m.domain.api_duration.observe(("SMSMessagesSent",), 0.131)
    m.domain.api_duration.observe(("SMSMessagesSent",), 31)
    assert histogram_samples(m, "acs_sms_api_duration_seconds", {"operation": "SMSMessagesSent"}) == {
        "le=0.005": 1.0, "le=0.25": 2.0, "le=1.0": 2.0, "le=30.0": 2.0, "le=+Inf": 3.0,
        "_count": 3.0, "_sum": pytest.approx(31.136),
    }


def test_default_buckets_match_the_contract_ranges():
    b = Buckets()
    assert (b.api_duration_seconds[0], b.api_duration_seconds[-1]) == (0.005, 30)
    assert (b.delivery_latency_seconds[0], b.delivery_latency_seconds[-1]) == (1, 3600)
    assert (b.age_seconds[0], b.age_seconds[-1]) == (1, 21600)
    assert b.delivery_attempts == [1, 2, 3, 5, 10]


def test_fast_families_standalone():
    c = FastCounter("x", "doc", ("a",))
    c.inc(("1",))
    c.inc(("1",), 2)
    assert c.values == {("1",): 3.0}
    h = FastHistogram("h", "doc", (), [1, 2])
    h.observe((), 2)
    assert h.children[()] == [0.0, 1.0, 0.0, 2.0]


def test_callback_gauge_reads_at_render_time():
    m = Metrics(Buckets(), "x")
    state = {"n": 1.0}
    m.add_gauge("acs_test_gauge", "doc", ("side",), lambda: [(("sent",), state["n"])])
    state["n"] = 7.0
    [sample] = parse(m)["acs_test_gauge"].samples
    assert sample.labels == {"side": "sent"} and sample.value == 7.0


def test_registries_are_independent():
    a, b = Metrics(Buckets(), "x"), Metrics(Buckets(), "x")
    a.domain.events.inc(("0",))
    assert "acs_consumer_events_total{" in a.render().decode()
    assert "acs_consumer_events_total{" not in b.render().decode()
