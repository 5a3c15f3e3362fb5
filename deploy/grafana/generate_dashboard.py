#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/acs-sms-consumer.json (the dashboard is code: edit this file).

    python deploy/grafana/generate_dashboard.py           # rewrite the JSON
    python deploy/grafana/generate_dashboard.py --check   # exit 1 if the JSON is out of date

Every panel and every query uses the `datasource` template variable (type prometheus), so the
dashboard works with any Prometheus data source, imported by hand or provisioned
(provisioning/dashboards/acs-sms-consumer.yaml). Metric names: README.md "Metric reference", the public contract.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "acs-sms-consumer.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DR = 'operation="SMSDeliveryReportsReceived"'
COUNTRY = 'country=~"$country"'
RESOURCE = 'resource=~"$resource"'  # the ACS resource (several may send their logs to one hub)
SMS = f"{COUNTRY},{RESOURCE}"  # the selection of the SMS panels
PARTITION = 'partition=~"$partition"'


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title: str) -> None:
        if self.x:
            self.y += 8
            self.x = 0
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "datasource": DATASOURCE, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                            "panels": []})
        self.y += 1

    def add(self, panel: dict, width: int = 12, height: int = 8) -> None:
        if self.x + width > 24:
            self.y += height
            self.x = 0
        panel = {"id": self._id(), **panel, "datasource": DATASOURCE,
                 "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y}}
        for ref, target in zip("ABCDEFGH", panel["targets"]):
            target.setdefault("refId", ref)
            target["datasource"] = DATASOURCE
        self.panels.append(panel)
        self.x += width
        if self.x >= 24:
            self.x = 0
            self.y += height

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def target(expr: str, legend: str = "__auto", **extra) -> dict:
    return {"expr": expr, "legendFormat": legend, "range": True, "editorMode": "code", **extra}


def timeseries(title: str, description: str, targets: list[dict], unit: str = "short", stack: bool = False,
               min_zero: bool = True, max_value: float | None = None) -> dict:
    defaults: dict = {"unit": unit, "custom": {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1,
                                               "stacking": {"mode": "normal" if stack else "none", "group": "A"}}}
    if min_zero:
        defaults["min"] = 0
    if max_value is not None:
        defaults["max"] = max_value
    return {"type": "timeseries", "title": title, "description": description, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def heatmap(title: str, description: str, expr: str, unit: str) -> dict:
    return {"type": "heatmap", "title": title, "description": description,
            "targets": [target(expr, "{{le}}", format="heatmap")],
            "options": {"calculate": False, "yAxis": {"unit": unit, "axisPlacement": "left"},
                        "color": {"mode": "scheme", "scheme": "Oranges", "exponent": 0.5, "steps": 64},
                        "cellGap": 1, "tooltip": {"show": True, "yHistogram": True},
                        "legend": {"show": True}},
            "fieldConfig": {"defaults": {}, "overrides": []}}


def stat(title: str, description: str, expr: str, unit: str, thresholds: list[tuple[float | None, str]]) -> dict:
    return {"type": "stat", "title": title, "description": description,
            "targets": [target(expr, "", instant=True, range=False)],
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {
                "mode": "absolute", "steps": [{"value": v, "color": c} for v, c in thresholds]}}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "area", "textMode": "auto"}}


def zero_when_none(expr: str) -> str:
    """`expr` (one label-less series), or 0 while Prometheus scrapes any replica. Error counters appear
    at their first increment, so on a healthy fleet the plain query is empty and Grafana shows "No
    data", which reads as broken; this line is 0 instead, and empty only when no replica is known."""
    return f'{expr} or sum(up{{job="acs-sms-consumer"}}) * 0'


def quantiles(metric: str, by: str = "", legend_prefix: str = "") -> list[dict]:
    grouping = f"{by}, le" if by else "le"
    prefix = f"{legend_prefix} " if legend_prefix else ""
    return [target(f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}[$__rate_interval])))",
                   f"{prefix}p{int(q * 100)}") for q in (0.5, 0.95, 0.99)]


def dashboard() -> dict:
    d = Layout()
    d.row("SMS delivery")
    d.add(stat("Delivery success ratio (range)", "Delivery reports with result Succeeded over all delivery reports, "
               "over the selected time range, countries and resources.",
               f'sum(increase(acs_sms_operations_total{{{DR},result="Succeeded",{SMS}}}[$__range]))'
               f" / sum(increase(acs_sms_operations_total{{{DR},{SMS}}}[$__range]))",
               "percentunit", [(None, "red"), (0.9, "orange"), (0.95, "green")]), width=6)
    d.add(stat("Delivery reports (range)", "Delivery reports received in the selected time range.",
               f"sum(increase(acs_sms_operations_total{{{DR},{SMS}}}[$__range]))", "short",
               [(None, "blue")]), width=6)
    d.add(timeseries("Delivery success ratio", "Overall, across the selected countries and resources (alert: "
                     "AcsSmsDeliveryFailureRatioHigh fires above 5% failures).",
                     [target(f'sum(rate(acs_sms_operations_total{{{DR},result="Succeeded",{SMS}}}[$__rate_interval]))'
                             f" / sum(rate(acs_sms_operations_total{{{DR},{SMS}}}[$__rate_interval]))", "overall")],
                     unit="percentunit", max_value=1))
    d.add(timeseries("Delivery success ratio by country", "Per country (alert: AcsSmsDeliveryFailureRatioHighByCountry, per resource and country, "
                     "fires above 10% failures with 50+ reports in 15 minutes).",
                     [target(f'sum by (country) (rate(acs_sms_operations_total{{{DR},result="Succeeded",{SMS}}}[$__rate_interval]))'
                             f" / sum by (country) (rate(acs_sms_operations_total{{{DR},{SMS}}}[$__rate_interval]))",
                             "{{country}}")], unit="percentunit", max_value=1))
    d.add(timeseries("Delivery success ratio by resource", "Per ACS resource (the resource label: the name in the "
                     "records' resourceId; alert AcsSmsDeliveryFailureRatioHighByCountry fires per resource and country).",
                     [target(f'sum by (resource) (rate(acs_sms_operations_total{{{DR},result="Succeeded",{SMS}}}[$__rate_interval]))'
                             f" / sum by (resource) (rate(acs_sms_operations_total{{{DR},{SMS}}}[$__rate_interval]))",
                             "{{resource}}")], unit="percentunit", max_value=1))
    d.add(timeseries("Delivery failures by result_signature", "Failed delivery reports per second by ACS delivery "
                     "status code (4xxx rejected, 5xxx carrier, 9999 unknown: see deploy/runbook.md).",
                     [target(f"sum by (result_signature) (rate(acs_sms_failures_total{{{DR},{SMS}}}[$__rate_interval]))",
                             "{{result_signature}}")], unit="ops", stack=True))
    d.add(timeseries("Failures by country", "Failed SMS operations per second (sends and delivery reports) by country.",
                     [target(f"sum by (country, operation) (rate(acs_sms_failures_total{{{SMS}}}[$__rate_interval]))",
                             "{{country}} {{operation}}")], unit="ops", stack=True))
    d.add(timeseries("Operations by operation and result", "SMSOperational records per second.",
                     [target(f"sum by (operation, result) (rate(acs_sms_operations_total{{{SMS}}}[$__rate_interval]))",
                             "{{operation}} {{result}}")], unit="ops"))
    d.add(timeseries("Unmatched delivery reports", "Delivery reports whose sent record was not seen within the "
                     "correlation window and whose MessageId carries no send time (no latency measured for them).",
                     [target(f"sum by (result) (rate(acs_sms_delivery_reports_unmatched_total{{{RESOURCE}}}[$__rate_interval]))",
                             "{{result}}"),
                      target(zero_when_none(f"sum(rate(acs_sms_delivery_reports_unmatched_total{{{RESOURCE}}}[$__rate_interval]))"),
                             "all results")], unit="ops"))

    d.row("Latency")
    d.add(heatmap("Delivery latency", "Time from the send to its delivery report: the sent record with the same "
                  "MessageId, or the send time in the MessageId when another replica saw the send.",
                  f"sum by (le) (increase(acs_sms_delivery_latency_seconds_bucket{{{RESOURCE}}}[$__rate_interval]))", "s"))
    d.add(timeseries("Delivery latency coverage by source", "Share of delivery reports that got a latency: paired with "
                     "their sent record (exact) or from the send time in their MessageId (±0.5 s; the send was on "
                     "another replica). Near 100% in total when ACS MessageIds carry their send time.",
                     [target(f"sum by (source) (rate(acs_sms_delivery_latency_seconds_count{{{RESOURCE}}}[$__rate_interval])) / scalar("
                             f"sum(rate(acs_sms_operations_total{{{DR},{RESOURCE}}}[$__rate_interval])))", "{{source}}")],
                     unit="percentunit", max_value=1, stack=True))
    d.add(timeseries("Delivery latency quantiles", "Alert AcsSmsDeliveryLatencyHigh: p95 above 5 minutes.",
                     quantiles(f"acs_sms_delivery_latency_seconds_bucket{{{RESOURCE}}}"), unit="s"))
    d.add(heatmap("API duration", "DurationMs of SMSOperational records.",
                  "sum by (le) (increase(acs_sms_api_duration_seconds_bucket[$__rate_interval]))", "s"))
    d.add(timeseries("API duration quantiles by operation", "Alert AcsSmsApiDurationHigh: p99 above 5 seconds.",
                     quantiles("acs_sms_api_duration_seconds_bucket", "operation", "{{operation}}"), unit="s"))
    d.add(timeseries("Delivery attempts p95", "DeliveryAttempts of delivery reports, by result.",
                     [target("histogram_quantile(0.95, sum by (result, le) (rate(acs_sms_delivery_attempts_bucket[$__rate_interval])))",
                             "{{result}} p95")]))

    d.row("Usage")
    d.add(timeseries("Usage quantity by usage_type", "Sum of Quantity of Usage records per second, by resource, "
                     "usage and unit type.",
                     [target(f"sum by (resource, usage_type, unit_type) (rate(acs_usage_quantity_total{{{RESOURCE}}}[$__rate_interval]))",
                             "{{resource}} {{usage_type}} ({{unit_type}})")], stack=True))
    d.add({"type": "bargauge", "title": "Usage quantity in the range", "description": "Quantity by resource, usage and "
           "unit type over the selected time range.",
           "targets": [target(f"sum by (resource, usage_type, unit_type) (increase(acs_usage_quantity_total{{{RESOURCE}}}[$__range]))",
                              "{{resource}} {{usage_type}} ({{unit_type}})", instant=True, range=False)],
           "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
           "options": {"orientation": "horizontal", "displayMode": "gradient",
                       "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}})
    d.add(timeseries("Message characters", "Outgoing/IncomingMessageLength per second.",
                     [target("sum by (direction) (rate(acs_sms_message_characters_total[$__rate_interval]))",
                             "{{direction}}")]))

    d.row("Consumer")
    d.add(timeseries("Lag per partition (events)", "Last enqueued minus last processed sequence number "
                     "(alert AcsSmsConsumerLagHigh: above 10000 for 15 minutes).",
                     [target(f"max by (partition) (acs_consumer_partition_lag_events{{{PARTITION}}})", "{{partition}}")]))
    d.add(timeseries("Throughput per partition", "Event Hubs events received per second.",
                     [target(f"sum by (partition) (rate(acs_consumer_events_total{{{PARTITION}}}[$__rate_interval]))",
                             "{{partition}}")], unit="ops", stack=True))
    d.add(timeseries("Event age", "Processing time minus enqueued time (alert AcsSmsConsumerEventAgeHigh: p95 above "
                     "5 minutes), and the age of the newest processed event per partition.",
                     quantiles("acs_consumer_event_age_seconds_bucket")
                     + [target(f"time() - max by (partition) (acs_consumer_last_event_timestamp_seconds{{{PARTITION}}})",
                               "newest event, partition {{partition}}")], unit="s"))
    d.add(timeseries("Records by outcome", "Records per second by category and outcome "
                     "(processed, invalid, skipped, duplicate).",
                     [target("sum by (category, outcome) (rate(acs_consumer_records_total[$__rate_interval]))",
                             "{{category}} {{outcome}}")], unit="ops", stack=True))
    d.add(timeseries("Checkpoints", "Checkpoint writes per second by partition and outcome; errors are the red flag. "
                     "Checkpoints follow the /metrics scrapes; 'unscraped' are the checkpoints written past the "
                     "last scrape because none had come for checkpoint.no_scrape_seconds (Prometheus down).",
                     [target(f"sum by (partition, outcome) (rate(acs_consumer_checkpoints_total{{{PARTITION}}}[$__rate_interval]))",
                             "{{partition}} {{outcome}}"),
                      target(zero_when_none('sum(increase(acs_consumer_checkpoints_total{outcome="error"}[$__rate_interval]))'),
                             "errors (all partitions)"),
                      target(zero_when_none("sum(increase(acs_consumer_unscraped_checkpoints_total[$__rate_interval]))"),
                             "unscraped (all replicas)")], unit="ops"))
    d.add(timeseries("Decode errors and dead letters", "Bodies that yielded no records, by reason, and what the "
                     "dead-letter writer did with them, by outcome.",
                     [target("sum by (reason) (increase(acs_consumer_decode_errors_total[$__rate_interval]))",
                             "decode error: {{reason}}"),
                      target("sum by (outcome) (increase(acs_consumer_dead_letters_total[$__rate_interval]))",
                             "dead letter: {{outcome}}"),
                      target(zero_when_none("sum(increase(acs_consumer_decode_errors_total[$__rate_interval]))"),
                             "decode errors (all reasons)")]))
    d.add(timeseries("Client errors by kind", "Errors reported by the Event Hubs client or the checkpoint store.",
                     [target("sum by (kind) (increase(acs_consumer_errors_total[$__rate_interval]))", "{{kind}}"),
                      target(zero_when_none("sum(increase(acs_consumer_errors_total[$__rate_interval]))"),
                             "all kinds")]))
    d.add(timeseries("Replicas: up and owned partitions", "Scrape health and partitions owned by each replica.",
                     [target('up{job="acs-sms-consumer"}', "up {{instance}}"),
                      target("sum by (instance) (acs_consumer_owned_partitions)", "partitions {{instance}}")]))
    d.add(timeseries("Replica CPU and memory", "From the process collector of each replica.",
                     [target('rate(process_cpu_seconds_total{job="acs-sms-consumer"}[$__rate_interval])', "cpu {{instance}}"),
                      target('process_resident_memory_bytes{job="acs-sms-consumer"} / 2^30', "memory GiB {{instance}}")]))

    variables = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        {"name": "country", "label": "Country", "type": "query", "datasource": DATASOURCE,
         "query": {"query": "label_values(acs_sms_operations_total, country)", "refId": "country"},
         "definition": "label_values(acs_sms_operations_total, country)",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1, "hide": 0,
         "regex": "", "options": []},
        {"name": "resource", "label": "ACS resource", "type": "query", "datasource": DATASOURCE,
         "query": {"query": "label_values(acs_sms_operations_total, resource)", "refId": "resource"},
         "definition": "label_values(acs_sms_operations_total, resource)",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 1, "hide": 0,
         "regex": "", "options": []},
        {"name": "partition", "label": "Partition", "type": "query", "datasource": DATASOURCE,
         "query": {"query": "label_values(acs_consumer_events_total, partition)", "refId": "partition"},
         "definition": "label_values(acs_consumer_events_total, partition)",
         "multi": True, "includeAll": True, "allValue": ".*", "current": {}, "refresh": 2, "sort": 3, "hide": 0,
         "regex": "", "options": []},
    ]
    return {
        "uid": "acs-sms-consumer",
        "title": "ACS SMS consumer",
        "description": "Azure Communication Services SMS delivery, latency and usage from the diagnostic logs, "
                       "and the health of acs-sms-consumer. Runbook: deploy/runbook.md.",
        "tags": ["acs", "sms", "event-hubs"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": d.panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if current == text:
        return 0
    if args.check:
        print(f"out of date: {OUTPUT} (run python deploy/grafana/generate_dashboard.py)", file=sys.stderr)
        return 1
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
