"""deploy/prometheus: the generated rule files are up to date with alerts.src.yaml, promtool accepts
them and every alert passes its unit tests (promtool is required: CI installs it), every alert is
tested firing and silent, has a runbook section, and uses only series the consumer exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from .helpers import DEPLOY, PROMETHEUS, ROOT, promql_series_names, rule_generator, rules_file_for_tests, unknown_series

RULES = PROMETHEUS / "acs-sms-consumer.rules.yaml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yaml"))
RUNBOOK = ROOT / "deploy" / "runbook.md"
generator = rule_generator


def source() -> dict:
    return generator().load_source()


def rules() -> list[dict]:
    return [rule for group in source()["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for rule in rules() if "alert" in rule]


def test_generated_files_are_up_to_date() -> None:
    gen = generator()
    for path, text in gen.outputs(gen.load_source()).items():
        assert path.exists(), f"{path} is missing: run python deploy/prometheus/generate.py"
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.relative_to(ROOT)} is out of date with alerts.src.yaml: run python deploy/prometheus/generate.py"


def test_promtool_check_rules(promtool: str) -> None:
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(rules())} rules found" in proc.stdout + proc.stderr


def rules_for_unit_tests(directory: Path) -> list[Path]:
    """The rule file rendered with TEST_RUNBOOK_BASE_URL beside a copy of the promtool tests (which
    name it ../acs-sms-consumer.rules.yaml): the tests do not depend on the runbook setting."""
    (directory / RULES.name).write_text(rules_file_for_tests(), encoding="utf-8")
    (directory / "tests").mkdir()
    return [Path(shutil.copy(path, directory / "tests" / path.name)) for path in UNIT_TESTS]


def test_promtool_unit_tests(promtool: str, tmp_path: Path) -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    tests = rules_for_unit_tests(tmp_path)
    proc = subprocess.run([promtool, "test", "rules", *map(str, tests)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_runbook_base_url_is_one_setting() -> None:
    """Every generated runbook_url is runbook_base_url + the alert's section; changing the setting and
    regenerating changes all of them and nothing else."""
    gen = generator()
    source = gen.load_source()
    moved = {**source, "runbook_base_url": "https://wiki.example.org/acs/runbook"}
    for path, text in gen.outputs(source).items():
        expected = text.replace(source["runbook_base_url"] + "#", moved["runbook_base_url"] + "#")
        assert gen.outputs(moved)[path] == expected, path
        if path.suffix == ".yaml" and "runbook_url" in text:
            assert text.count(source["runbook_base_url"] + "#") == len(alerts()), path


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing, silent = set(), set()
    for path in UNIT_TESTS:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["rule_files"] == ["../acs-sms-consumer.rules.yaml"], path
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - firing == set(), f"alerts never tested firing: {sorted(names - firing)}"
    assert names - silent == set(), f"alerts never tested silent: {sorted(names - silent)}"
    assert (firing | silent) <= names, f"tests of unknown alerts: {sorted((firing | silent) - names)}"


def test_every_alert_is_documented() -> None:
    for alert in alerts():
        assert alert["severity"] in {"critical", "warning", "info"}, alert["alert"]
        assert alert["summary"] and alert["description"], alert["alert"]
    runbook = RUNBOOK.read_text(encoding="utf-8")
    anchors = {heading.strip().lower() for heading in re.findall(r"^## +(.+)$", runbook, re.M)}
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in filter(lambda rule: "alert" in rule, group["rules"]):
            url = rule["annotations"]["runbook_url"]
            assert url == f"{source()['runbook_base_url']}#{rule['alert'].lower()}", url
            assert url.split("#")[1] in anchors, f"deploy/runbook.md has no section '## {rule['alert']}'"


def test_prometheus_rule_manifest_carries_the_same_groups() -> None:
    plain = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    manifest = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == plain["groups"]


def test_rules_use_only_exported_series() -> None:
    """Every rule selects series the consumer exports, or series a recording rule before it records."""
    recorded: set[str] = set()
    for rule in rules():
        name = rule.get("alert") or rule["record"]
        names = promql_series_names(rule["expr"])
        assert names, name
        unknown = unknown_series(names - recorded)
        assert not unknown, f"{name} uses series the consumer does not export: {sorted(unknown)}"
        if "record" in rule:
            recorded.add(rule["record"])


def test_up_alerts_select_the_service_monitor_job() -> None:
    """The job label of the targets is the Service's label that the ServiceMonitor's jobLabel names
    (the same for every installation), in both the prometheus-operator and the Azure monitor."""
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text(encoding="utf-8"))
    monitors = [DEPLOY / "kubernetes" / "servicemonitor.yaml",
                DEPLOY / "kubernetes" / "components" / "azure-managed-prometheus" / "servicemonitor.yaml"]
    for path in monitors:
        monitor = yaml.safe_load(path.read_text(encoding="utf-8"))
        job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
        assert job == "acs-sms-consumer", path
    for alert in alerts():
        if "up{" in alert["expr"]:
            assert f'up{{job="{job}"}}' in alert["expr"], alert["alert"]


def test_azure_rule_groups_carry_the_same_rules() -> None:
    """The ARM template for Azure Monitor managed Prometheus: each group as one rule group (or parts of
    at most AZURE_MAX_RULES rules, in order), every rule with the very expression, `for`, labels and
    annotations of the Prometheus rule file."""
    import json

    gen = generator()
    template = json.loads(gen.AZURE_RULE_GROUPS.read_text(encoding="utf-8"))
    plain = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    resources = template["resources"]
    assert {r["type"] for r in resources} == {"Microsoft.AlertsManagement/prometheusRuleGroups"}
    assert all(len(r["properties"]["rules"]) <= gen.AZURE_MAX_RULES for r in resources)
    parts = {group["name"]: [r for r in resources if re.search(rf"-{group['name']}(-\d+)?'", r["name"])]
             for group in plain}
    assert sum(len(found) for found in parts.values()) == len(resources)
    for group in plain:
        assert parts[group["name"]], group["name"]
        assert all(r["properties"]["interval"] == "PT" + group["interval"].upper() for r in parts[group["name"]])
        azure_rules = [rule for r in parts[group["name"]] for rule in r["properties"]["rules"]]
        for rule, azure in zip(group["rules"], azure_rules, strict=True):
            if "record" in rule:
                labels = {"labels": rule["labels"]} if "labels" in rule else {}
                assert azure == {"record": rule["record"], "expression": rule["expr"].strip(), **labels,
                                 "enabled": True}
                continue
            assert azure["alert"] == rule["alert"]
            assert azure["expression"] == rule["expr"].strip()
            assert azure.get("for") == ("PT" + rule["for"].upper() if "for" in rule else None)
            assert azure["labels"] == rule["labels"] and azure["annotations"] == rule["annotations"]
            assert azure["severity"] == {"critical": 0, "warning": 2, "info": 3}[rule["labels"]["severity"]]
    # Every ARM expression ("[...]") names only declared parameters; no rule text reads as one.
    text = gen.AZURE_RULE_GROUPS.read_text(encoding="utf-8")
    used = set(re.findall(r"parameters\('(\w+)'\)", text))
    assert used == set(template["parameters"]), used ^ set(template["parameters"])
    for group in resources:
        for rule in group["properties"]["rules"]:
            for value in (rule["expression"], *rule.get("annotations", {}).values()):
                assert not value.startswith("[") or value.startswith("[["), value


def test_durations_convert_to_iso8601_or_fail() -> None:
    import pytest

    gen = generator()
    assert [gen.iso8601_duration(d) for d in ("30s", "15m", "1h")] == ["PT30S", "PT15M", "PT1H"]
    with pytest.raises(SystemExit):
        gen.iso8601_duration("1h30m")
