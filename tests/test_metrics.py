"""consumer.metrics: the exposition matches the contract, docs/metrics.md's metric reference."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import Buckets, PipelineSettings
from prometheus_client.metrics import MetricWrapperBase

from consumer.metrics import FastCounter, FastHistogram, Metrics
from consumer.pipeline import Pipeline

from tests.contract import readme_families

#: family as exposed → (type, label names): docs/metrics.md's metric reference is the contract.
CONTRACT = readme_families()


def exposed_families(m: Metrics) -> dict[str, str]:
    """{name on the `# TYPE` line: type} of a rendering: counters carry `_total` there."""
    out = {}
    for line in m.render().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            out[name] = kind
    return out


def with_a_child_in_every_family(m: Metrics) -> Metrics:
    """Every family of `m` gets one child (label values v0, v1, ...), so its label names show."""
    for family in vars(m.domain).values():
        if isinstance(family, FastCounter):
            family.inc(tuple(f"v{i}" for i in range(len(family.labelnames))))
        elif isinstance(family, FastHistogram):
            family.observe(tuple(f"v{i}" for i in range(len(family.labelnames))), 1.0)
    for family in vars(m.consumer).values():
        if not isinstance(family, MetricWrapperBase):
            continue
        for count in range(8):  # the public API does not expose label names: find the count by trying
            try:
                child = family.labels(*(f"v{i}" for i in range(count))) if count else family
                (child.observe if hasattr(child, "observe") else child.inc)(1)
                break
            except ValueError:
                continue
    return m


def service_metrics() -> Metrics:
    """The metrics of a running service: the registry plus what a Pipeline adds (its gauges)."""
    m = Metrics(Buckets(), "1.2.3")
    Pipeline(PipelineSettings(), m.domain)
    return m


def test_readme_lists_exactly_the_families_exported_with_their_types():
    exposed = {name: kind for name, kind in exposed_families(service_metrics()).items()
               if not name.startswith(("process_", "python_"))}
    documented = {name: kind for name, (kind, _) in CONTRACT.items()}
    assert exposed == documented


def test_every_family_has_the_readme_labels():
    families = parse(with_a_child_in_every_family(service_metrics()))
    checked = 0
    for name, (kind, labels) in CONTRACT.items():
        family = families[name.removesuffix("_total") if kind == "counter" else name]
        assert family.samples, name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)
        checked += 1
    assert checked == len(CONTRACT) >= 25


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
    c.errors.labels("unreachable").inc()
    c.batch_duration.observe(0.01)
    return m


def parse(m: Metrics) -> dict:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_no_created_series():
    text = populated().render().decode()
    assert "_created" not in text


def test_build_info_is_one_with_version():
    families = parse(Metrics(Buckets(), "9.9.9"))
    [sample] = families["acs_consumer_build_info"].samples
    assert sample.labels == {"version": "9.9.9"} and sample.value == 1.0


def test_counter_values_and_total_suffix():
    m = Metrics(Buckets(), "x")
    m.domain.usage_quantity.inc(("SMS", "Message", "acs-a"), 2.5)
    m.domain.usage_quantity.inc(("SMS", "Message", "acs-a"), 1)
    assert m.domain.usage_quantity.get("SMS", "Message", "acs-a") == 3.5
    assert m.domain.usage_quantity.get("PSTN", "Minute", "acs-a") == 0.0
    [sample] = parse(m)["acs_usage_quantity"].samples
    assert sample.name == "acs_usage_quantity_total"
    assert sample.labels == {"usage_type": "SMS", "unit_type": "Message", "resource": "acs-a"} and sample.value == 3.5


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


# --- series budget per family -------------------------------------------------------------------


def test_a_family_at_its_budget_folds_new_combinations_into_other() -> None:
    d = Metrics(PipelineSettings().buckets, "test").domain
    d.limit_series(3)
    for i in range(5):
        d.operations.inc(("SMSMessagesSent", "Succeeded", "LongCodeNumber", f"C{i}", "acs-a"))
    d.operations.inc(("SMSMessagesSent", "Succeeded", "LongCodeNumber", "C1", "acs-a"), 2.0)  # present: its own series
    assert d.operations.values == {
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "C0", "acs-a"): 1.0,
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "C1", "acs-a"): 3.0,
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "C2", "acs-a"): 1.0,
        ("SMSMessagesSent", "Succeeded", "LongCodeNumber", "other", "other"): 2.0,
    }
    assert d.series_folded.values == {("acs_sms_operations",): 2.0}


def test_closed_labels_keep_their_value_when_folded() -> None:
    d = Metrics(PipelineSettings().buckets, "test").domain
    d.limit_series(2)
    for i, outcome in enumerate(("processed", "skipped", "invalid", "duplicate", "invalid")):
        d.records.inc((f"Cat{i}", outcome))
    assert d.records.values == {("Cat0", "processed"): 1.0, ("Cat1", "skipped"): 1.0, ("other", "invalid"): 2.0,
                                ("other", "duplicate"): 1.0}
    for i, source in enumerate(("paired", "message_id", "paired", "message_id")):
        d.delivery_latency.observe(("Succeeded", f"N{i}", source, "acs-a"), 1.5)
    assert set(d.delivery_latency.children) == {("Succeeded", "N0", "paired", "acs-a"), ("Succeeded", "N1", "message_id", "acs-a"),
                                                ("Succeeded", "N2", "paired", "other"), ("Succeeded", "N3", "message_id", "other")}
    assert d.delivery_latency.count("Succeeded", "N2", "paired", "other") == 1
    assert d.series_folded.values == {("acs_consumer_records",): 3.0, ("acs_sms_delivery_latency_seconds",): 2.0}


def test_documented_result_codes_keep_their_value_when_folded() -> None:
    """A full family still tells a recipient's opt-out (4007) from an undocumented code: the SLO
    excludes the one and counts the other (docs/alerting.md)."""
    d = Metrics(PipelineSettings().buckets, "test").domain
    d.limit_series(1)
    d.failures.inc(("SMSDeliveryReportsReceived", "4001", "LongCodeNumber", "US", "acs-a"))
    d.failures.inc(("SMSDeliveryReportsReceived", "4007", "LongCodeNumber", "FR", "acs-a"))
    d.failures.inc(("SMSDeliveryReportsReceived", "4099", "LongCodeNumber", "FR", "acs-a"))
    assert d.failures.values == {
        ("SMSDeliveryReportsReceived", "4001", "LongCodeNumber", "US", "acs-a"): 1.0,
        ("SMSDeliveryReportsReceived", "4007", "LongCodeNumber", "other", "other"): 1.0,
        ("SMSDeliveryReportsReceived", "other", "LongCodeNumber", "other", "other"): 1.0,
    }


def test_updating_the_other_series_itself_is_not_a_fold() -> None:
    d = Metrics(PipelineSettings().buckets, "test").domain
    d.limit_series(1)
    d.usage_records.inc(("SMS", "Message", "acs-a"))
    d.usage_records.inc(("other", "other", "other"))
    assert d.series_folded.values == {}
    d.usage_records.inc(("PSTN", "Minute", "acs-a"))
    assert d.usage_records.values == {("SMS", "Message", "acs-a"): 1.0, ("other", "other", "other"): 2.0}
    assert d.series_folded.values == {("acs_usage_records",): 1.0}


# --- the direct exposition of the fast families is prometheus_client's, byte for byte ---------------


def _hostile_populated() -> Metrics:
    m = populated()
    d = m.domain
    odd = ['a"b', "back\\slash", "new\nline", "ü€", "", "other"]
    for i, value in enumerate(odd):
        d.operations.inc((value, "Failed", f"N{i}", "US", value), 0.1 * i + 1e-7)
        d.delivery_latency.observe((value, "LongCodeNumber", "paired", "acs-a"), 10.0 ** (i - 2))
        d.api_duration.observe((value,), 1e22 * i)
    d.repaired_bodies.inc((), 3)  # a family without labels
    d.event_age.observe((), float("inf"))
    return m


@pytest.mark.parametrize("accept", [
    None,
    "text/plain; version=0.0.4",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0; charset=utf-8",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    "text/plain; version=1.0.0; escaping=values",
])
def test_direct_render_is_prometheus_clients_byte_for_byte(accept):
    from prometheus_client.exposition import choose_encoder

    for m in (Metrics(Buckets(), "test"), _hostile_populated()):
        encoder, content_type = choose_encoder(accept or "")
        assert m.render_for(accept) == (encoder(m.registry), content_type)
        assert m.render() == __import__("prometheus_client").generate_latest(m.registry)


def test_direct_render_is_used_and_the_registry_stays_complete():
    m = _hostile_populated()
    text = m.render()
    assert text.count(b"# TYPE acs_sms_operations_total counter") == 1
    # anyone collecting the registry itself still gets every family
    assert "acs_sms_operations" in {family.name for family in m.registry.collect()}
