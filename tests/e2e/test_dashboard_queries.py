"""Every panel of the Grafana dashboard has data, with each template variable set to All and, in
turn, to a real value (issue 29.5): two replicas of `acs-sms-consumer run` (sender numbers listed, so
that the sender family is filled) on a hub of 4 partitions, synthetic ACS traffic published in real
time (sends, delivery reports with failures, inbound messages, opt-ins and opt-outs, usage, from two
ACS resources), and a real Prometheus scraping them with the repository's rule file, recording rules
included, shortened 60x (tests/e2e/prometheus.py). Panels are read through Prometheus' HTTP API the way
Grafana asks: range queries over the run, instant ones at its end, variables substituted. A panel
without data fails the test, the failure-class and error-budget panels of recorded series included.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acs_sms_devtools.prometheus import PrometheusServer
from acs_sms_devtools.traffic import TrafficOptions, publish
# The sender IDs of DynamicAlphaSenderID sends; the traffic's phone numbers are random, hence `other`.
from acs_sms_devtools.traffic.vocabulary import ALPHA_SENDERS
from tests.e2e.prometheus import dashboard_label_queries, fleet_prometheus, panels_with_data
from tests.e2e.replicas import start_replicas, wait_balanced

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 4
EXPIRY = 5.0
TRAFFIC = TrafficOptions(rate=120.0, failure_ratio=0.1, records_per_body=10, duration=25.0, seed=29)
ALL = ".*"  # the variables' All value


def busiest_value(prometheus: PrometheusServer, metric: str, label: str) -> str | None:
    """The value of `label` on `metric` with the largest total, not `other`/`unknown`: a real choice
    of the variable that every panel filtering on it should still show (None: the label is absent)."""
    result = prometheus.query(f'topk(1, sum by ({label}) ({metric}{{{label}!~"other|unknown|"}}))')
    return result[0]["metric"][label] if result else None


def test_every_panel_has_data_with_all_and_with_a_real_value_of_each_variable(
        eventhubs_factory, azurite, blob_container, tmp_path: Path) -> None:
    endpoint = eventhubs_factory(partitions=PARTITIONS)
    replicas = start_replicas(2, endpoint, azurite, blob_container, tmp_path, EXPIRY,
                              pipeline__labels__senders=list(ALPHA_SENDERS))
    try:
        with fleet_prometheus(tmp_path / "prometheus", [f"127.0.0.1:{r.port}" for r in replicas]) as prometheus:
            wait_balanced(replicas, PARTITIONS, stable_for=1, timeout=45)
            prometheus.wait_for(lambda: list(prometheus.target_health().values()) == ["up"] * 2, 20,
                                "Prometheus scraping both replicas")
            started = time.time()
            report = asyncio.run(publish(TRAFFIC, connection_string=endpoint.connection_string,
                                         start=datetime.fromtimestamp(started, UTC), realtime=True))
            published = report.stats.records
            prometheus.wait_for(lambda: (prometheus.value("sum(acs_consumer_records_total)") or 0) >= published, 40,
                                f"Prometheus counting the {published} records published")
            # A few more rule evaluations (every second) so the recorded series see the last counts.
            time.sleep(3)
            end = time.time()

            base = {"__rate_interval": "4s", "__interval": "1s", "__range": f"{math.ceil(end - started)}s",
                    "datasource": "prometheus"}
            variables = dashboard_label_queries()
            everything = {**base, **{name: ALL for _, name, _, _ in variables}}
            settings = {"every variable All": everything}
            absent = []
            for _, name, metric, label in variables:
                value = busiest_value(prometheus, metric, label)
                if value is None:
                    absent.append(name)
                else:
                    settings[f"${name}={value}"] = {**everything, name: value}
            coverage = {what: panels_with_data(prometheus, values, started, end) for what, values in settings.items()}
    finally:
        for replica in replicas:
            replica.stop()

    empty = {what: sorted(panel for panel, data in panels.items() if not data) for what, panels in coverage.items()}
    print(f"\n{published} records published; {len(coverage['every variable All'])} panels; settings "
          f"{sorted(settings)}; variables without values: {absent}")
    # No cluster label in a plain Prometheus: the variable offers only All (`.*` matches the absent label).
    assert absent == ["cluster"], absent
    assert len(settings) == len(variables), sorted(settings)
    assert not any(empty.values()), {what: panels for what, panels in empty.items() if panels}
