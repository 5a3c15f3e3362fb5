"""deploy/grafana: the dashboard and the Grafana-managed alert rules.

- The dashboard JSON is what generate_dashboard.py gives; every panel and query uses the `datasource`
  variable (type prometheus).
- Every PromQL expression (panels, variables, alert rules) parses: Grafana variables are replaced by
  sample values, then promtool checks the expressions as recording rules of a throwaway file.
- Every series they select is exported by the consumer: compared with the real output of
  `acs-sms-consumer replay consumer/samples/*` (not a hand-written list), plus `up` and `process_*`.
- The Grafana alert rules carry the same expressions, durations, labels and annotations as the
  Prometheus rules (both are generated from deploy/prometheus/alerts.src.yaml).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import GRAFANA, PROMETHEUS, load_module, promql_series_names, rule_generator, unknown_series

DASHBOARD = GRAFANA / "dashboards" / "acs-sms-consumer.json"
DASHBOARD_PROVISIONING = GRAFANA / "provisioning" / "dashboards" / "acs-sms-consumer.yaml"
ALERTING = GRAFANA / "provisioning" / "alerting" / "acs-sms-consumer.yaml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Sample values for Grafana's built-in and the dashboard's variables.
GRAFANA_VARIABLES = {"__rate_interval": "2m", "__interval": "1m", "__range": "6h", "__range_s": "21600",
                     "__interval_ms": "60000", "country": "US", "resource": "acs-sample", "partition": "0",
                     "cluster": "aks-1", "number_type": "LongCodeNumber", "sender": "CONTOSO",
                     "datasource": "prometheus"}


def rule_names(kind: str) -> frozenset[str]:
    """The names of the `kind` ("record" or "alert") rules of deploy/prometheus/acs-sms-consumer.rules.yaml."""
    rules = yaml.safe_load((PROMETHEUS / "acs-sms-consumer.rules.yaml").read_text(encoding="utf-8"))
    return frozenset(rule[kind] for group in rules["groups"] for rule in group["rules"] if kind in rule)


# Recorded series the dashboard may read: those the rule file records (generated from
# deploy/prometheus/alerts.src.yaml). Anything else with a colon in its name is a typo.
RECORDED = rule_names("record")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def all_panels(panels: list[dict]) -> list[dict]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(all_panels(panel.get("panels", [])))
    return out


def substitute(expr: str) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise AssertionError(f"unknown Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def variable_expr(query: str) -> str:
    """label_values(metric, label) → metric, the selector Grafana sends to the series API."""
    match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", query)
    assert match, f"unsupported variable query {query!r}"
    return match.group(1)


def dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for panel in all_panels(dashboard()["panels"]):
        for t in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} {t['refId']}", t["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append((f"variable {variable['name']}", variable_expr(variable["query"]["query"])))
    return exprs


def grafana_rules() -> list[dict]:
    document = yaml.safe_load(ALERTING.read_text(encoding="utf-8"))
    assert document["apiVersion"] == 1
    return [(group, rule) for group in document["groups"] for rule in group["rules"]]


def test_nothing_in_the_alert_rules_is_read_as_an_environment_variable() -> None:
    """Grafana expands $VAR in most fields of alerting provisioning files (not in query models; in
    annotations only ${VAR}): `$` may appear only in query models and in annotations' `{{ $x }}`."""
    for group, rule in grafana_rules():
        for value in (group["name"], group["folder"], group["interval"], rule["uid"], rule["title"],
                      rule["condition"], rule["for"], rule["noDataState"], rule["execErrState"],
                      *rule["labels"].values()):
            assert "$" not in value, f"{rule['title']}: {value!r}"
        for value in rule["annotations"].values():
            assert "${" not in value, f"{rule['title']}: {value!r}"


def promtool_check(promtool: str, exprs: list[tuple[str, str]], tmp_path: Path) -> None:
    rules = {"groups": [{"name": "grafana-expressions", "rules": [
        {"record": f"check:expr_{i}", "expr": substitute(expr)} for i, (_, expr) in enumerate(exprs)]}]}
    path = tmp_path / "expressions.rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        # Say which expression failed: check them one by one.
        for where, expr in exprs:
            single = tmp_path / "single.rules.yaml"
            single.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
                {"record": "check:expr", "expr": substitute(expr)}]}]}), encoding="utf-8")
            one = subprocess.run([promtool, "check", "rules", str(single)], capture_output=True, text=True, timeout=60)
            assert one.returncode == 0, f"{where}: {expr}\n{one.stdout}{one.stderr}"
        pytest.fail(proc.stdout + proc.stderr)


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_is_up_to_date() -> None:
    generator = load_module(GRAFANA / "generate_dashboard.py", "deploy_grafana_generate_dashboard")
    assert DASHBOARD.read_text(encoding="utf-8") == generator.render(), \
        "run python deploy/grafana/generate_dashboard.py"


def test_datasource_variable_is_used_everywhere() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
    panels = all_panels(dashboard()["panels"])
    assert panels
    for panel in panels:
        assert panel.get("datasource") == DATASOURCE, f"panel {panel['title']!r} does not use $datasource"
        for t in panel.get("targets", []):
            assert t.get("datasource") == DATASOURCE, f"panel {panel['title']!r} query {t['refId']}"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_covers_the_issue() -> None:
    exprs = " ".join(expr for _, expr in dashboard_exprs())
    types = {p["type"] for p in all_panels(dashboard()["panels"])}
    assert "heatmap" in types
    for needle in ("acs_sms_operations_total", "by (country)", "by (result_signature)", "acs_sms_failures_total",
                   "acs_sms_delivery_latency_seconds_bucket", "acs_sms_api_duration_seconds_bucket",
                   "histogram_quantile(0.95", "by (resource, usage_type, unit_type)", "by (resource)",
                   'resource=~"$resource"', "acs_consumer_partition_lag_events",
                   "acs_consumer_events_total", 'outcome="error"', "acs_consumer_decode_errors_total",
                   "acs_consumer_dead_letters_total", "acs_consumer_records_total"):
        assert needle in exprs, needle


def test_dashboard_expressions_parse(promtool: str, tmp_path: Path) -> None:
    promtool_check(promtool, dashboard_exprs(), tmp_path)


def test_dashboard_uses_only_exported_series() -> None:
    for where, expr in dashboard_exprs():
        names = promql_series_names(substitute(expr))
        assert names, where
        unknown = unknown_series(names) - RECORDED
        assert not unknown, f"{where} uses series the consumer does not export and no rule records: {sorted(unknown)}"


def test_dashboard_provisioning_points_at_a_directory() -> None:
    provisioning = yaml.safe_load(DASHBOARD_PROVISIONING.read_text(encoding="utf-8"))
    assert provisioning["apiVersion"] == 1
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


# --- alert rules -------------------------------------------------------------------------------


def test_grafana_rules_are_the_prometheus_rules() -> None:
    plain = yaml.safe_load((PROMETHEUS / "acs-sms-consumer.rules.yaml").read_text(encoding="utf-8"))
    prometheus = {r["alert"]: (g, r) for g in plain["groups"] for r in g["rules"] if "alert" in r}
    # Grafana-managed rules have no recording rules: each expression has the ones it names written out
    records = {r["record"]: r["expr"] for g in plain["groups"] for r in g["rules"] if "record" in r}
    inline = rule_generator().inline_records
    grafana = grafana_rules()
    assert sorted(r["title"] for _, r in grafana) == sorted(prometheus)
    uids = [r["uid"] for _, r in grafana]
    assert len(set(uids)) == len(uids) and all(len(u) <= 40 for u in uids)
    for group, rule in grafana:
        prom_group, prom = prometheus[rule["title"]]
        assert group["name"] == prom_group["name"]
        queries = {d["refId"]: d for d in rule["data"]}
        assert queries["A"]["model"]["expr"] == inline(prom["expr"].strip(), records) + "\n"
        assert not set(records) & promql_series_names(queries["A"]["model"]["expr"]), rule["title"]
        assert queries["A"]["model"]["instant"] is True
        assert queries["B"]["datasourceUid"] == "__expr__"
        assert queries["B"]["model"]["expression"] == "is_number($A) || is_nan($A) || is_inf($A)"
        assert queries["C"]["model"]["type"] == "threshold" and queries["C"]["model"]["expression"] == "B"
        assert queries["C"]["model"]["conditions"] == [{"evaluator": {"type": "gt", "params": [0]}}]
        assert rule["condition"] == "C"
        assert rule["for"] == prom.get("for", "0s")
        assert rule["labels"] == prom["labels"]
        assert rule["noDataState"] == "OK"
        assert rule["annotations"]["runbook_url"] == prom["annotations"]["runbook_url"]
        for key in ("summary", "description"):
            assert rule["annotations"][key] == prom["annotations"][key].replace("$value", "$values.A.Value")


def test_grafana_rule_expressions_parse(promtool: str, tmp_path: Path) -> None:
    exprs = [(rule["title"], d["model"]["expr"]) for _, rule in grafana_rules() for d in rule["data"]
             if d["refId"] == "A"]
    promtool_check(promtool, exprs, tmp_path)


def test_grafana_rules_use_only_exported_series() -> None:
    for _, rule in grafana_rules():
        expr = next(d["model"]["expr"] for d in rule["data"] if d["refId"] == "A")
        assert not unknown_series(promql_series_names(expr)), rule["title"]
