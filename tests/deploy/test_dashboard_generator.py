"""deploy/grafana/generate_dashboard.py: the dashboard as Grafana's SDK models it, its import inputs,
its file provisioning, its variables and the recorded series it reads (issue 29).

The queries returning data from a real Prometheus: tests/e2e/test_dashboard_queries.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from .helpers import GRAFANA, PROMETHEUS, load_module, promql_series_names
from .test_grafana import (
    DASHBOARD,
    RECORDED,
    all_panels,
    dashboard,
    dashboard_exprs,
    promtool_check,
    rule_names,
    substitute,
)

VARIABLES = ["datasource", "cluster", "resource", "country", "number_type", "sender", "partition"]
IMPORT_INPUT = "${DS_PROMETHEUS}"


def generator():
    return load_module(GRAFANA / "generate_dashboard.py", "deploy_grafana_generate_dashboard")


def test_check_mode_fails_when_the_committed_json_differs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = generator()
    stale = tmp_path / "acs-sms-consumer.json"
    stale.write_text(DASHBOARD.read_text(encoding="utf-8").replace('"refresh": "1m"', '"refresh": "5m"'))
    monkeypatch.setattr(module, "OUTPUT", stale)
    assert module.main(["--check"]) == 1
    assert '"refresh": "5m"' in stale.read_text(encoding="utf-8"), "--check must not rewrite the file"
    assert module.main([]) == 0 and module.main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == DASHBOARD.read_text(encoding="utf-8")


def test_the_json_is_the_sdk_model_round_tripped() -> None:
    """Decoded into the SDK's Dashboard model (panels, rows, targets, variables) and encoded again,
    the JSON comes back unchanged: nothing in it is outside the model but the import header."""
    document = dashboard()
    body = {key: value for key, value in document.items() if key not in ("__inputs", "__requires")}
    decoded = Dashboard.from_json(body)
    assert json.loads(json.dumps(decoded, cls=JSONEncoder)) == body
    assert decoded.schema_version >= 39 and decoded.uid == "acs-sms-consumer"


def test_import_inputs_name_the_prometheus_data_source() -> None:
    document = dashboard()
    [source] = document["__inputs"]
    assert source["name"] == "DS_PROMETHEUS" and source["type"] == "datasource" and source["pluginId"] == "prometheus"
    required = {(r["type"], r["id"]) for r in document["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    kinds = {p["type"] for p in all_panels(document["panels"]) if p["type"] != "row"}
    assert {("panel", kind) for kind in kinds} == {r for r in required if r[0] == "panel"}


def test_provisioning_needs_no_import_input() -> None:
    """File provisioning loads the JSON as it is (no `__inputs` substitution): `${DS_PROMETHEUS}` may be
    only the datasource variable's default, which Grafana replaces by its first Prometheus data source
    when no data source has that UID; every query goes through `${datasource}`."""
    document = dashboard()
    text = json.dumps({k: v for k, v in document.items() if k != "__inputs"})
    variables = {v["name"]: v for v in document["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    assert source["current"] == {"text": IMPORT_INPUT, "value": IMPORT_INPUT}
    assert text.count(IMPORT_INPUT) == 2, "DS_PROMETHEUS is used outside the datasource variable's default"
    assert "id" not in document, "a fixed dashboard id clashes between Grafana instances; uid identifies it"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "acs-sms-consumer.yaml").read_text())
    [provider] = provider["providers"]
    assert provider["options"]["path"].startswith("/") and not provider.get("allowUiUpdates")


def test_variables_are_multi_select_with_all_matching_absent_labels() -> None:
    variables = dashboard()["templating"]["list"]
    assert [v["name"] for v in variables] == VARIABLES
    for variable in variables[1:]:
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"], variable["name"]
        # `.*` also matches the empty value: series without the label (no cluster label, no sender
        # listed) stay in every panel while the variable is All.
        assert variable["allValue"] == ".*", variable["name"]
        assert re.fullmatch(r"label_values\(\w+, \w+\)", variable["query"]["query"]), variable["name"]
    queries = {v["name"]: v["query"]["query"] for v in variables[1:]}
    assert queries["cluster"].endswith(", cluster)")
    assert queries["sender"] == "label_values(acs_sms_sender_operations_total, sender)"


def test_every_variable_filters_some_panel_and_only_through_regex_matchers() -> None:
    exprs = [expr for where, expr in dashboard_exprs() if where.startswith("panel")]
    for name in VARIABLES[1:]:
        assert any(f'{name}=~"${name}"' in expr for expr in exprs), f"no panel filters by ${name}"
    for expr in exprs:
        for match in re.finditer(r'(\w+)(=~|=|!=|!~)"\$(\w+)"', expr):
            assert match.group(2) == "=~", f"multi-value ${match.group(3)} needs =~: {expr}"


def test_the_consumer_health_row_is_collapsed_and_last() -> None:
    rows = [p for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows[-1]["title"] == "Consumer health" and rows[-1]["collapsed"] is True
    assert rows[-1]["panels"], "a collapsed row keeps its panels inside"
    assert all(not row["collapsed"] for row in rows[:-1])


def test_the_panels_an_acs_user_expects_are_there() -> None:
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    for needle in ("by (failure_class)", 'operation=~"SMSOptOutReceived|SMSOptInReceived"', 'result_signature="4007"',
                   'operation="SMSMessagesReceived"', "acs_sms_sender_operations_total",
                   ":error_budget_remaining30d", ":burn_rate1h", ":burn_rate3d", "topk("):
        assert needle in exprs, needle
    [top] = [p for p in all_panels(dashboard()["panels"]) if p["type"] == "table"]
    [override] = top["fieldConfig"]["overrides"]
    mappings = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    meanings = mappings[0]["options"]
    assert {"4001", "4007", "5001", "9999"} <= set(meanings) and "opted out" in meanings["4007"]["text"]


def recorded_in_dashboard() -> set[str]:
    return {name for _, expr in dashboard_exprs() for name in promql_series_names(substitute(expr)) if ":" in name}


def test_recorded_series_are_those_of_the_rules() -> None:
    """Every recorded series a panel reads is recorded by deploy/prometheus/acs-sms-consumer.rules.yaml."""
    used = recorded_in_dashboard()
    assert used, "the dashboard reads no recorded series: the failure-class and error-budget panels are gone"
    assert used <= RECORDED, f"recorded series no rule records: {sorted(used - RECORDED)}"


def test_every_alert_the_dashboard_names_exists() -> None:
    """Panel descriptions (and everything else in the JSON) name only alerts of the rule file."""
    named = set(re.findall(r"\bAcsSms[A-Za-z]+", DASHBOARD.read_text(encoding="utf-8")))
    assert named, "the dashboard names no alert"
    assert named <= rule_names("alert"), f"alerts the rules do not have: {sorted(named - rule_names('alert'))}"


def test_the_code_meanings_are_the_failure_classes_of_the_rules() -> None:
    """The failing-codes table shows every code of alerts.src.yaml's failure_classes with its class."""
    [top] = [p for p in all_panels(dashboard()["panels"]) if p["type"] == "table"]
    [override] = top["fieldConfig"]["overrides"]
    [mapping] = next(p["value"] for p in override["properties"] if p["id"] == "mappings")
    source = yaml.safe_load((PROMETHEUS / "alerts.src.yaml").read_text(encoding="utf-8"))
    classes = {str(code): cls for cls, codes in source["failure_classes"].items() for code in codes}
    assert set(mapping["options"]) == set(classes)
    for code, cls in classes.items():
        assert mapping["options"][code]["text"].startswith(f"{code} ") and f"({cls})" in mapping["options"][code]["text"]


def test_firing_alerts_are_annotations(promtool: str, tmp_path: Path) -> None:
    """The annotation query parses and matches every alert of the Prometheus rules (their names)."""
    [annotation] = dashboard()["annotations"]["list"]
    assert annotation["enable"] and annotation["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    promtool_check(promtool, [("annotation", annotation["expr"])], tmp_path)
    pattern = re.search(r'alertname=~"([^"]+)"', annotation["expr"]).group(1)
    alerts = rule_names("alert")
    assert alerts and all(re.fullmatch(pattern, name) for name in alerts), sorted(alerts)
