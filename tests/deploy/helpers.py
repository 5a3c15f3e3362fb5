"""Helpers of the deployment tests (deploy/**): paths, tool lookup, YAML loading."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE_BASE = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"


def venv_tool(name: str) -> str | None:
    """A console script of the running interpreter's environment, else one on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def load_yaml_documents(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


# --- metric names --------------------------------------------------------------------------------

# Series every Prometheus has for a target, and the process collector's families.
WELL_KNOWN_SERIES = {"up"}
WELL_KNOWN_PREFIXES = ("process_",)
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
            "gauge": ("",), "untyped": ("",), "info": ("_info",), "stateset": ("",), "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


@functools.cache
def exported_series_names() -> frozenset[str]:
    """Series names the consumer exports, from the real `acs-sms-consumer replay consumer/samples/*`.

    replay registers every family (domain and acs_consumer_*) and prints the Prometheus text
    exposition; each `# TYPE` line names a family, expanded to its series names here.
    """
    samples = sorted(str(p) for p in (ROOT / "consumer" / "samples").iterdir() if p.is_file())
    proc = subprocess.run([sys.executable, "-m", "consumer", "replay", *samples], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"acs-sms-consumer replay failed: {proc.stderr}"
    names = set()
    for line in proc.stdout.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            for suffix in SUFFIXES[kind]:
                names.add(family if family.endswith(suffix) else family + suffix)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    assert any(n.startswith("acs_consumer_") for n in names) and any(n.startswith("acs_sms_") for n in names), \
        "replay printed no acs_consumer_* or acs_sms_* family"
    return frozenset(names)


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan", "atan2"}


def promql_series_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (the expression is assumed valid: promtool checks that).

    Strings, label matchers, grouping clauses and ranges are removed; what is left that is an
    identifier not called as a function and not a keyword is a metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]", name):
            continue
        names.add(name)
    return names


def unknown_series(names: set[str]) -> set[str]:
    exported = exported_series_names()
    return {n for n in names
            if n not in exported and n not in WELL_KNOWN_SERIES and not n.startswith(WELL_KNOWN_PREFIXES)}


# --- the alert-rule generator --------------------------------------------------------------------

#: The runbook base URL the promtool tests expect in runbook_url annotations, whatever the setting
#: (alerts.src.yaml's runbook_base_url): they run against rules rendered with this one.
TEST_RUNBOOK_BASE_URL = "https://git.example.invalid/acs-sms-consumer/blob/main/deploy/runbook.md"


def load_module(path: Path, name: str):
    """The Python file at `path` as a module named `name` (the generators of deploy/ are no package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rule_generator():
    """deploy/prometheus/generate.py as a module."""
    return load_module(PROMETHEUS / "generate.py", "deploy_prometheus_generate")


def rules_file_for_tests() -> str:
    """The Prometheus rule file rendered with TEST_RUNBOOK_BASE_URL (what the promtool tests expect)."""
    gen = rule_generator()
    source = gen.load_source()
    source["runbook_base_url"] = TEST_RUNBOOK_BASE_URL
    return gen.rules_file(source)
