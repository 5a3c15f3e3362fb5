"""docs/alerting.md documents the failure classes: its table is the `failure_classes:` mapping of
deploy/prometheus/alerts.src.yaml (same codes, classes, reasons) with the SLI's excluded codes marked."""

from __future__ import annotations

import re

import yaml

from .helpers import PROMETHEUS, ROOT

DOC = ROOT / "docs" / "alerting.md"
ROW = re.compile(r"^\| (?P<code>\d{3,5}) \| (?P<meaning>[^|]+) \| (?P<cls>\w+) \| (?P<excluded>yes|no) \| (?P<why>[^|]+) \|$")


def test_the_failure_class_table_is_the_source_mapping() -> None:
    source = yaml.safe_load((PROMETHEUS / "alerts.src.yaml").read_text(encoding="utf-8"))
    excluded = {str(code) for code in source["slo"]["delivery"]["excluded_codes"]}
    expected = {str(code): (cls, str(code) in excluded, reason.split(" - ", 1)[0].strip())
                for cls, codes in source["failure_classes"].items() for code, reason in codes.items()}
    documented = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if match := ROW.match(line):
            documented[match["code"]] = (match["cls"], match["excluded"] == "yes", match["meaning"].strip())
    assert documented == expected
