"""deploy/runbook.md opens with a table of every alert (severity, `for`, meaning, first action), kept in
step with the rules: every alert of the rule file has one row with its severity and `for`, and there
is no row for an alert the rules do not have."""

from __future__ import annotations

import re

import yaml

from .helpers import PROMETHEUS, ROOT

RUNBOOK = ROOT / "deploy" / "runbook.md"
RULES = PROMETHEUS / "acs-sms-consumer.rules.yaml"
NO_FOR = "—"
ROW = re.compile(r"^\| \[(?P<alert>\w+)\]\(#(?P<anchor>[\w-]+)\) \| (?P<severity>\w+) \| (?P<for>[^|]+?) \| "
                 r"(?P<meaning>[^|]+?) \| (?P<action>[^|]+?) \|$")


def table() -> dict[str, dict[str, str]]:
    """The rows of the runbook's first section, by alert; a row that does not parse fails the test."""
    text = RUNBOOK.read_text(encoding="utf-8")
    first = re.split(r"^## ", text, flags=re.M)[1]
    rows: dict[str, dict[str, str]] = {}
    for line in first.splitlines():
        if not line.startswith("| [") and not (line.startswith("| ") and "](#" in line):
            continue
        match = ROW.match(line)
        assert match, f"runbook table row does not parse: {line}"
        assert match["alert"] not in rows, f"two rows for {match['alert']}"
        rows[match["alert"]] = match.groupdict()
    return rows


def rules() -> dict[str, dict]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def test_the_runbook_opens_with_the_alert_table() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    headings = re.findall(r"^## +(.+)$", text, re.M)
    assert headings[0] == "Every alert at a glance", headings[:2]
    assert table(), "no alert rows in the runbook's first section"


def test_every_alert_has_one_row_with_its_severity_and_for() -> None:
    rows, alerts = table(), rules()
    assert sorted(set(alerts) - set(rows)) == [], "alerts missing from the runbook table"
    assert sorted(set(rows) - set(alerts)) == [], "runbook table rows for alerts the rules do not have"
    for name, rule in alerts.items():
        row = rows[name]
        assert row["severity"] == rule["labels"]["severity"], f"{name}: severity {row['severity']} in the table"
        assert row["for"] == rule.get("for", NO_FOR), f"{name}: for {row['for']} in the table, {rule.get('for')} in the rules"
        assert row["anchor"] == name.lower(), f"{name}: the row links #{row['anchor']}"
        assert row["meaning"].strip() and row["action"].strip(), name
