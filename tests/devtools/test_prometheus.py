"""devtools/acs_sms_devtools/prometheus.py: the shortened copy of the alert rules (pure) and the server's start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from acs_sms_devtools.prometheus import (
    PrometheusNotFound,
    PrometheusServer,
    RuleRewriteError,
    find_prometheus,
    format_duration,
    parse_duration,
    repository_rules,
    shorten_expr,
    shorten_rules,
    write_shortened_rules,
)


@pytest.mark.parametrize(("text", "ms"), [("15m", 900_000), ("1h30m", 5_400_000), ("500ms", 500), ("1m5s", 65_000),
                                          ("2d", 172_800_000), ("1w", 604_800_000)])
def test_durations_parse_and_format_back(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert format_duration(ms) == text


@pytest.mark.parametrize("text", ["", "15", "m", "15x", "1.5m", "$__rate_interval", "5m1h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_ranges_subqueries_and_offsets_are_divided_strings_and_comments_are_not() -> None:
    expr = 'rate(x{a="[5m]", b=~"offset 5m"}[5m:30s] offset -1h) > 300 # over [3m]\nand y offset 15m'
    assert shorten_expr(expr, 60) == ('rate(x{a="[5m]", b=~"offset 5m"}[5s:500ms] offset -1m) > 300 # over [3m]\n'
                                      "and y offset 15s")


@pytest.mark.parametrize(("expr", "message"), [
    ("rate(x[$__rate_interval])", "not a Prometheus duration"),
    ("x offset $shift", "offset without a plain duration"),
    ("rate(x[1s])", "under a millisecond"),  # divided by 2000 below
    ("rate(x[1m])", "shorter than 2s"),
    ('x{a="unterminated}', "unterminated string"),
])
def test_what_cannot_be_rewritten_fails_loudly(expr: str, message: str) -> None:
    speedup = 2000 if "[1s]" in expr else 60
    with pytest.raises(RuleRewriteError, match=message):
        shorten_expr(expr, speedup, min_range=2)


def test_the_project_rules_are_shortened_and_everything_else_kept() -> None:
    source = yaml.safe_load(repository_rules().read_text())
    shortened = shorten_rules(source, 60)
    assert [g["name"] for g in shortened["groups"]] == [g["name"] for g in source["groups"]]
    by_name = {r.get("alert") or r["record"]: r for g in shortened["groups"] for r in g["rules"]}
    original = {r.get("alert") or r["record"]: r for g in source["groups"] for r in g["rules"]}
    assert by_name.keys() == original.keys()
    rule = by_name["AcsSmsDeliveryFailureRatioHighByCountry"]
    assert rule["for"] == "15s" and "[15s]" in rule["expr"] and "[15m]" not in rule["expr"]
    assert "> 0.10" in rule["expr"] and ">= 50" in rule["expr"]  # thresholds are not time constants
    assert by_name["AcsSmsConsumerDecodeErrors"]["expr"].count("offset 15s") == 1
    assert all(g["interval"] == "1s" for g in shortened["groups"])
    for name, rule in by_name.items():
        assert rule.get("labels") == original[name].get("labels")
        assert rule.get("annotations") == original[name].get("annotations")
        durations = r"\[(\w+)\]|offset (\w+)"
        before = [parse_duration(a or b) for a, b in re.findall(durations, original[name]["expr"])]
        after = [parse_duration(a or b) for a, b in re.findall(durations, rule["expr"])]
        assert after == [ms // 60 for ms in before], (name, rule["expr"])
    assert source["groups"][0]["rules"][0]["for"] == "15m"  # the source is not modified


def test_a_rule_that_cannot_be_rewritten_is_named() -> None:
    rules = {"groups": [{"name": "g", "rules": [{"alert": "Bad", "expr": "rate(x[$window]) > 0", "for": "5m"}]}]}
    with pytest.raises(RuleRewriteError, match="group g, rule Bad: range"):
        shorten_rules(rules, 60)
    with pytest.raises(RuleRewriteError, match="no `groups`"):
        shorten_rules({"rules": []}, 60)


def test_the_shortened_copy_passes_promtool(tmp_path: Path) -> None:
    written = write_shortened_rules(repository_rules(), tmp_path / "rules.yaml", 60, min_range=2)
    assert "for: 15s" in written.read_text()


def test_a_missing_server_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrometheusNotFound, match="apt-get install prometheus"):
        find_prometheus()
    with pytest.raises(PrometheusNotFound):
        PrometheusServer(tmp_path, ["127.0.0.1:1"]).start()
