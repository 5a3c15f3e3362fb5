"""deploy/prometheus: the generated rule files are up to date with alerts.src.yaml, promtool accepts
them and every alert passes its unit tests (promtool is required: CI installs it), every alert is
tested firing and silent, has a runbook section, and uses only series the consumer exports.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess

import yaml

from .helpers import DEPLOY, PROMETHEUS, ROOT, promql_series_names, unknown_series

RULES = PROMETHEUS / "acs-sms-consumer.rules.yaml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yaml"))
RUNBOOK = ROOT / "deploy" / "runbook.md"


def generator():
    spec = importlib.util.spec_from_file_location("deploy_prometheus_generate", PROMETHEUS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source() -> dict:
    return generator().load_source()


def alerts() -> list[dict]:
    return [rule for group in source()["groups"] for rule in group["rules"]]


def test_generated_files_are_up_to_date() -> None:
    gen = generator()
    for path, text in gen.outputs(gen.load_source()).items():
        assert path.exists(), f"{path} is missing: run python deploy/prometheus/generate.py"
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.relative_to(ROOT)} is out of date with alerts.src.yaml: run python deploy/prometheus/generate.py"


def test_promtool_check_rules(promtool: str) -> None:
    proc = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in proc.stdout + proc.stderr


def test_promtool_unit_tests(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    proc = subprocess.run([promtool, "test", "rules", *map(str, UNIT_TESTS)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url.split("#")[0].endswith("/deploy/runbook.md"), url
            assert url.split("#")[1] in anchors, f"deploy/runbook.md has no section '## {rule['alert']}'"


def test_prometheus_rule_manifest_carries_the_same_groups() -> None:
    plain = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    manifest = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    assert manifest["kind"] == "PrometheusRule"
    assert manifest["spec"]["groups"] == plain["groups"]


def test_rules_use_only_exported_series() -> None:
    for alert in alerts():
        names = promql_series_names(alert["expr"])
        assert names, alert["alert"]
        assert not unknown_series(names), f"{alert['alert']} uses series the consumer does not export: " \
                                          f"{sorted(unknown_series(names))}"


def test_up_alerts_select_the_service_monitor_job() -> None:
    monitor = yaml.safe_load((DEPLOY / "kubernetes" / "servicemonitor.yaml").read_text(encoding="utf-8"))
    service = yaml.safe_load((DEPLOY / "kubernetes" / "service.yaml").read_text(encoding="utf-8"))
    assert "jobLabel" not in monitor["spec"], "the job label would no longer be the Service name"
    job = service["metadata"]["name"]
    for alert in alerts():
        if "up{" in alert["expr"]:
            assert f'up{{job="{job}"}}' in alert["expr"], alert["alert"]
