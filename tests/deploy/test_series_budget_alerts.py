"""The series budget never disarms an alert (issue 24 item 5): a replica flooded past its per-family
budget still counts a later failure burst under the right operation, result and (listed) resource, and
the real burn-rate rules, fed with what the replica exposes minute after minute, page for it.

The chain is the real one: records → Pipeline → /metrics text → promtool with the generated rules.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import LabelLimits, PipelineSettings
from consumer.labels import ISO_COUNTRIES
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline

from .helpers import TEST_RUNBOOK_BASE_URL, rules_file_for_tests

BUDGET = 40
LISTED = "acs-prod"
RESOURCE_IDS = "/SUBSCRIPTIONS/0/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/{}"
REPORT = "SMSDeliveryReportsReceived"
#: Series of these families go to promtool (what the delivery SLI reads).
FAMILIES = ("acs_sms_operations_total", "acs_sms_failures_total")


def report(country: str, result: str, code: str, resource: str = LISTED) -> dict:
    return {"time": "2026-11-02T10:00:00Z", "category": "SMSOperational", "operationName": REPORT,
            "resourceId": RESOURCE_IDS.format(resource.upper()), "resultType": result, "resultSignature": code,
            "properties": {"NumberType": "LongCodeNumber", "Country": country}}


def body(records: list[dict]) -> bytes:
    return json.dumps({"records": records}).encode()


def flooded() -> tuple[Pipeline, Metrics, str]:
    """A replica whose families are at their budget (flooded by another resource's reports), and a
    country it has never seen."""
    metrics = Metrics(PipelineSettings().buckets, "test")
    settings = PipelineSettings(labels=LabelLimits(series_per_family=BUDGET, resources=[LISTED]))
    pipeline = Pipeline(settings, metrics.domain)
    countries = sorted(ISO_COUNTRIES)
    flood = [report(country, "Failed", str(4000 + i % 10), f"acs-noise-{i % 3}")
             for i, country in enumerate(countries[:3 * BUDGET])]
    pipeline.process(body(flood), 0.0, EventContext(partition="0"))
    assert len(metrics.domain.operations.values) > BUDGET  # at the budget, the rest folded
    return pipeline, metrics, countries[-1]


def burst(country: str) -> bytes:
    """A minute of a carrier outage in `country`: 60 of 100 delivery reports fail with 5000."""
    return body([report(country, "Failed", "5000")] * 60 + [report(country, "Succeeded", "2000")] * 40)


def test_a_failure_burst_past_the_budget_keeps_operation_result_code_and_listed_resource() -> None:
    pipeline, metrics, country = flooded()
    pipeline.process(burst(country), 60.0, EventContext(partition="0"))
    operations = metrics.domain.operations.values
    assert operations[(REPORT, "Failed", "LongCodeNumber", "other", LISTED)] == 60
    assert operations[(REPORT, "Succeeded", "LongCodeNumber", "other", LISTED)] == 40
    failures = metrics.domain.failures.values
    assert failures[(REPORT, "5000", "LongCodeNumber", "other", LISTED)] == 60  # a documented code: its class stays


def samples(metrics: Metrics) -> dict[str, float]:
    """The series of FAMILIES in the replica's exposition, as promtool series strings → value."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name in FAMILIES:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels},job=\"acs-sms-consumer\",instance=\"a\"}}"] = sample.value
    return out


def test_the_page_fires_for_a_burst_in_a_flooded_replica(promtool: str, tmp_path: Path) -> None:
    pipeline, metrics, country = flooded()
    minutes = 40
    scrapes = [samples(metrics)]
    for minute in range(1, minutes + 1):
        pipeline.process(burst(country), 60.0 * minute, EventContext(partition="0"))
        scrapes.append(samples(metrics))
    series = sorted(set().union(*scrapes))
    input_series = [{"series": name, "values": " ".join(
        str(scrape[name]) if name in scrape else "_" for scrape in scrapes)} for name in series]
    (tmp_path / "rules.yaml").write_text(rules_file_for_tests(), encoding="utf-8")
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": input_series,
            "alert_rule_test": [{
                "eval_time": f"{minutes}m",
                "alertname": "AcsSmsDeliveryErrorsBudgetBurnFast",
                "exp_alerts": [{
                    "exp_labels": {"severity": "critical", "job": "acs-sms-consumer", "resource": LISTED},
                    "exp_annotations": {
                        "summary": f"SMS of ACS resource {LISTED} fail fast enough to spend the 30d error budget",
                        "description": (
                            f"ACS resource {LISTED} spends the 30d error budget of its delivery success objective "
                            "(99 % of delivery reports not failed for a reason the platform, carrier or sender "
                            "owns; codes 4002, 4004, 4007 excluded) 60 times as fast as it lasts (windows 1h/5m "
                            "at 14.4x, 6h/30m at 6x)."),
                        "runbook_url": f"{TEST_RUNBOOK_BASE_URL}#acssmsdeliveryerrorsbudgetburnfast",
                    },
                }],
            }],
        }],
    }
    (tmp_path / "flood.test.yaml").write_text(yaml.safe_dump(test), encoding="utf-8")
    proc = subprocess.run([promtool, "test", "rules", "flood.test.yaml"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
