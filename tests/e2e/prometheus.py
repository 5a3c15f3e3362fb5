"""A real Prometheus server for the end-to-end tests: the harness of devtools/acs_sms_devtools/prometheus.py
with the project's alert rules shortened (a minute becomes a second), scraping local replicas every
second, evaluating every second; stopped at the end of the `with` block.

    with fleet_prometheus(tmp_path, ["127.0.0.1:9464", ...]) as prometheus:
        prometheus.query('sum(acs_consumer_records_total)')
        prometheus.firing("AcsSmsDeliveryFailureRatioHighByCountry")
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from acs_sms_devtools.prometheus import (
    DEFAULT_SPEEDUP,
    PrometheusServer,
    repository_rules,
    write_shortened_rules,
)

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
SCRAPE_INTERVAL = 1.0
EVALUATION_INTERVAL = 1.0


@contextmanager
def fleet_prometheus(workdir: Path, targets: Sequence[str], speedup: float = DEFAULT_SPEEDUP) -> Iterator[PrometheusServer]:
    """Prometheus scraping `targets` with the shortened copy of the project's rules."""
    workdir.mkdir(parents=True, exist_ok=True)
    rules = write_shortened_rules(repository_rules(), workdir / "rules.yaml", speedup,
                                  min_range=2 * SCRAPE_INTERVAL)
    server = PrometheusServer(workdir, targets, [rules], scrape_interval=SCRAPE_INTERVAL,
                              evaluation_interval=EVALUATION_INTERVAL)
    server.start()
    try:
        yield server
    finally:
        server.close()


# --- Grafana panels -----------------------------------------------------------------------------


def dashboard_queries(variables: Mapping[str, str], path: Path | None = None) -> list[tuple[str, str, str, bool]]:
    """(dashboard, panel title, expression, instant) of every panel target of the dashboards in
    deploy/grafana/dashboards (or `path`), with the template variables substituted from `variables`
    (`country`, `__rate_interval`, `__range`, ...: a missing one fails, so a new variable is noticed)."""
    queries = []
    for file in [path] if path else sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(file.read_text(encoding="utf-8"))
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                queries.append((file.name, panel["title"], substitute(target["expr"], variables),
                                bool(target.get("instant")) and not target.get("range", False)))
    return queries


def dashboard_label_queries(path: Path | None = None) -> list[tuple[str, str, str, str]]:
    """(dashboard, variable, metric, label) of every `label_values(metric, label)` template variable."""
    found = []
    for file in [path] if path else sorted(DASHBOARDS.glob("*.json")):
        for variable in json.loads(file.read_text(encoding="utf-8"))["templating"]["list"]:
            if variable.get("type") != "query":
                continue
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"\s*label_values\(\s*([^,()]+?)\s*,\s*(\w+)\s*\)\s*", query)
            if match is None:
                raise ValueError(f"{file.name}: variable {variable['name']}: a query the test cannot run: {query!r}")
            found.append((file.name, variable["name"], match.group(1), match.group(2)))
    return found


def panels_with_data(prometheus: PrometheusServer, variables: Mapping[str, str], start: float, end: float,
                     step: float = 1.0) -> dict[str, bool]:
    """{"dashboard: panel title": whether any of the panel's queries, with `variables` substituted, returned
    a finite sample}: range queries over [start, end] every `step` seconds, instant ones at `end`."""
    panels: dict[str, bool] = {}
    for dashboard, title, expr, instant in dashboard_queries(variables):
        result = prometheus.query(expr, end) if instant else prometheus.query_range(expr, start, end, step)
        key = f"{dashboard}: {title}"
        panels[key] = panels.get(key, False) or has_data(result)
    return panels


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows keep their panels inside


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Grafana's `$name` / `${name}` / `[[name]]` with the values of `variables`."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"template variable ${name} in {expr!r} has no value in the test")
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def has_data(result: list[dict[str, Any]]) -> bool:
    """Whether a query result holds at least one finite sample (a ratio of nothing is NaN)."""
    for series in result:
        samples = series.get("values") or [series.get("value")]
        if any(sample and math.isfinite(float(sample[1])) for sample in samples):
            return True
    return False
