"""The SLO settings of deploy/prometheus/alerts.src.yaml are validated by the generator: a mistake is
refused with a message naming the setting and saying what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from consumer.config import Buckets

from .helpers import PROMETHEUS, rule_generator

SOURCE = yaml.safe_load((PROMETHEUS / "alerts.src.yaml").read_text(encoding="utf-8"))


def load(tmp_path: Path, change) -> dict:
    source = copy.deepcopy(SOURCE)
    change(source)
    path = tmp_path / "alerts.src.yaml"
    path.write_text(yaml.safe_dump(source), encoding="utf-8")
    return rule_generator().load_source(path)


def test_the_repository_settings_load() -> None:
    assert rule_generator().load_source()


def test_the_latency_threshold_is_checked_against_the_consumers_buckets(tmp_path: Path) -> None:
    boundaries = Buckets().delivery_latency_seconds
    assert 250 not in boundaries
    with pytest.raises(SystemExit, match=r"slo\.latency\.threshold_seconds: 250 is not a bucket boundary"):
        load(tmp_path, lambda s: s["slo"]["latency"].update(threshold_seconds=250))
    for boundary in (boundaries[0], boundaries[-1]):  # any boundary is accepted, and used as written
        source = load(tmp_path, lambda s, b=boundary: s["slo"]["latency"].update(threshold_seconds=b))
        exprs = "".join(rule["expr"] for group in source["groups"] for rule in group["rules"])
        assert f'le="{float(boundary)!r}"' in exprs


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s["slo"]["delivery"].update(objective=1.5), r"slo\.delivery\.objective: 1\.5 must be a fraction"),
    (lambda s: s["slo"]["latency"].update(objective=0), r"slo\.latency\.objective: 0 must be a fraction"),
    (lambda s: s["slo"]["delivery"].update(excluded_codes=["4007", "5000"]),
     r"slo\.delivery\.excluded_codes: \['5000'\] are not in failure_classes\.recipient"),
    (lambda s: s["failure_classes"]["carrier"].update({"4007": "twice"}), r"failure_classes\.\w+\.4007: already in class \w+"),
    (lambda s: s["failure_classes"].update(blocked={"4100": "x"}), r"failure_classes\.blocked: not a failure class"),
    (lambda s: s["failure_classes"]["carrier"].update({"5003": ""}), r"failure_classes\.carrier\.5003: give the reason"),
    (lambda s: s["slo"]["alerts"][0]["windows"][0].update(long="2h"), r"slo\.alerts\[0\]\.windows\[0\]\.long: 2h must be a burn-rate window"),
    (lambda s: s["slo"]["alerts"][0]["windows"][0].update(short="6h"), r"slo\.alerts\[0\]\.windows\[0\]: the short window must be shorter"),
    (lambda s: s["slo"]["alerts"][1]["windows"][1].update(min_events=0), r"slo\.alerts\[1\]\.windows\[1\]\.min_events: a positive whole number"),
    (lambda s: s["slo"]["alerts"][0].update(severity="page"), r"slo\.alerts\[0\]\.severity: critical \(page\)"),
    (lambda s: s["slo"].update(sli_windows=["5m", "1h"]), r"slo\.sli_windows: must contain the SLO window 30d"),
    (lambda s: s.update(installation_labels=[]), r"installation_labels: a list of label names"),
])
def test_a_wrong_setting_is_refused_naming_it(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        load(tmp_path, change)


def test_an_unknown_token_in_an_expression_is_refused(tmp_path: Path) -> None:
    def change(source: dict) -> None:
        source["groups"][0]["rules"][0]["expr"] = "sum by ($installations) (up)"
    with pytest.raises(SystemExit, match=r"unknown token \$installations in expr"):
        load(tmp_path, change)
