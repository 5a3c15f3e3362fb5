#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/acs-sms-consumer.json (the dashboard is code: edit this file).

    python deploy/grafana/generate_dashboard.py           # rewrite the JSON
    python deploy/grafana/generate_dashboard.py --check   # exit 1 if the JSON is out of date

Built with Grafana's typed builders (`grafana-foundation-sdk`, a dependency of this generator and
of the tests only, never of the service). Every panel and query uses the `datasource` template
variable, whose default is the import input `DS_PROMETHEUS` (`__inputs`): an import (UI, HTTP API,
`az grafana dashboard import`) asks for or picks the Prometheus data source; file provisioning
leaves `${DS_PROMETHEUS}` as it is, no data source has that UID, and the variable falls back to
the first Prometheus data source of the instance (by name). docs/dashboard.md: panels and variables.
Metric names: README.md "Metric reference". The recorded series, SLO objectives, burn rates, alert
names and the meaning of each result code come from deploy/prometheus/alerts.src.yaml, read and
validated by deploy/prometheus/generate.py (so this runs in the project's environment, as that does).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from string import ascii_uppercase
from typing import Any, Final, TypeVar

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models import prometheus as prometheus_model

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "acs-sms-consumer.json"
RULE_GENERATOR = HERE.parent / "prometheus" / "generate.py"


def _rule_generator() -> Any:
    """deploy/prometheus/generate.py as a module (it puts slo_rules and the consumer on the path)."""
    spec = importlib.util.spec_from_file_location("acs_sms_deploy_prometheus_generate", RULE_GENERATOR)
    assert spec is not None and spec.loader is not None, RULE_GENERATOR
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The validated SLO settings of alerts.src.yaml (slo_rules.Slo): the one source of the recorded
#: series' names and labels, objectives, burn rates, alert names and result code meanings.
_RULES = _rule_generator()
SLO: Final = _RULES.read_source()[1]
_SLO_RULES = importlib.import_module("slo_rules")  # which generate.py put on the path
#: The failure classes a result code can be given.
CLASSES: Final[tuple[str, ...]] = ("delivered", *_SLO_RULES.FAILURE_CLASSES)

DATASOURCE_INPUT: Final = "DS_PROMETHEUS"
DATASOURCE: Final = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The Grafana version whose dashboard schema the SDK writes (schemaVersion 41), for `__requires`.
GRAFANA_VERSION: Final = "11.6.0"

# --- selections ---------------------------------------------------------------------------------

#: The template variables that select series: variable name → label. `cluster` is not exported by the
#: consumer: Azure Monitor managed Prometheus and most multi-cluster setups add it to every series.
VARIABLES: Final = {"cluster": "cluster", "resource": "resource", "country": "country",
                    "number_type": "number_type", "sender": "sender", "partition": "partition"}

_SMS: Final = ("cluster", "resource", "country", "number_type")
#: Which variables may filter each series a panel reads: only labels the series carries, so that a
#: selected value never empties a panel whose series lacks the label. The recorded series are
#: aggregated by the installation labels and resource (and more): `cluster` filters them only if it is
#: one of the installation labels.
_RECORDED: Final = (*(["cluster"] if "cluster" in SLO.installation else []), "resource")
SERIES_VARIABLES: Final[dict[str, tuple[str, ...]]] = {
    "acs_sms_operations_total": _SMS,
    "acs_sms_failures_total": _SMS,
    "acs_sms_sender_operations_total": ("cluster", "resource", "sender"),
    "acs_sms_delivery_latency_seconds_bucket": ("cluster", "resource", "number_type"),
    "acs_sms_delivery_latency_seconds_count": ("cluster", "resource", "number_type"),
    "acs_sms_delivery_reports_unmatched_total": ("cluster", "resource"),
    "acs_sms_api_duration_seconds_bucket": ("cluster",),
    "acs_sms_delivery_attempts_bucket": ("cluster",),
    "acs_sms_message_characters_total": ("cluster",),
    "acs_usage_quantity_total": ("cluster", "resource"),
    "acs_consumer_partition_lag_events": ("cluster", "partition"),
    "acs_consumer_events_total": ("cluster", "partition"),
    "acs_consumer_event_age_seconds_bucket": ("cluster",),
    "acs_consumer_last_event_timestamp_seconds": ("cluster", "partition"),
    "acs_consumer_records_total": ("cluster",),
    "acs_consumer_checkpoints_total": ("cluster", "partition"),
    "acs_consumer_unscraped_checkpoints_total": ("cluster",),
    "acs_consumer_decode_errors_total": ("cluster",),
    "acs_consumer_dead_letters_total": ("cluster",),
    "acs_consumer_errors_total": ("cluster",),
    "acs_consumer_owned_partitions": ("cluster",),
    "up": ("cluster",),
    "process_cpu_seconds_total": ("cluster",),
    "process_resident_memory_bytes": ("cluster",),
    "resource_country_class:acs_sms_delivery_reports:rate5m": (*_RECORDED, "country", "number_type"),
    **{f"resource:acs_sms_delivery_{sli}:{kind}": _RECORDED
       for sli in SLO.objectives
       for kind in (f"error_budget_remaining{SLO.window}", *(f"burn_rate{w}" for w in SLO.burn_windows))},
}


def series(name: str, *matchers: str) -> str:
    """`name{matchers, label=~"$variable", ...}` with the variables that filter this series."""
    selection = [*matchers, *(f'{VARIABLES[v]}=~"${v}"' for v in SERIES_VARIABLES[name])]
    return f"{name}{{{','.join(selection)}}}"


JOB: Final = 'job="acs-sms-consumer"'
DR: Final = _SLO_RULES.DELIVERY_REPORTS
SENT: Final = 'operation="SMSMessagesSent"'
INBOUND: Final = 'operation="SMSMessagesReceived"'
OPT_OUT: Final = 'operation="SMSOptOutReceived"'
OPT_IN_OR_OUT: Final = 'operation=~"SMSOptOutReceived|SMSOptInReceived"'
OPTED_OUT: Final = 'result_signature="4007"'
ERROR: Final = 'outcome="error"'
SUCCEEDED: Final = 'result="Succeeded"'
OPERATIONS: Final = "acs_sms_operations_total"
FAILURES: Final = "acs_sms_failures_total"
FAILURE_CLASSES: Final = "resource_country_class:acs_sms_delivery_reports:rate5m"
SLIS: Final = {"errors": "delivery success", "slow": "delivery latency"}
#: The project's alerts (deploy/prometheus/alerts.src.yaml names them all AcsSms...) while they fire,
#: marked on every time series panel.
FIRING_ALERTS: Final = 'ALERTS{alertstate="firing",alertname=~"AcsSms.*"}'

#: The colour of each failure class of the recording rules (slo_rules.FAILURE_CLASSES and `delivered`,
#: checked by `outcome_classes`): green for delivered, warm colours for what the sender or platform owns.
CLASS_COLOURS: Final = {"delivered": "green", "recipient": "yellow", "sender": "orange", "filtered": "purple",
                        "carrier": "red", "unknown": "text"}
#: long window → (burn rate, severity) of the multi-window alerts (`slo.alerts[].windows`).
BURN_RATES: Final = {pair["long"]: (float(pair["burn_rate"]), alert["severity"])
                     for alert in SLO.alerts for pair in alert["windows"]}


def slo_alerts(sli: str) -> str:
    """The burn-rate alerts of an SLI with their severities, for a panel description."""
    return ", ".join(f"{SLO.alert_name(sli, alert)} ({alert['severity']})" for alert in SLO.alerts)


def objective(sli: str) -> str:
    return f"{SLO.objectives[sli] * 100:g} %"


#: Result codes of failed delivery reports (ResultSignature) → "meaning (failure class)", the table the
#: "top failing" panel shows (`failure_classes` of alerts.src.yaml). Succeeded reports (2000, class
#: delivered) are no failures and never in that table.
CODE_MEANINGS: Final = {code: f"{SLO.meanings[code]} ({SLO.codes[code]})" for code in sorted(SLO.codes, key=int)}

# --- queries and panels -------------------------------------------------------------------------


def query(expr: str, legend: str = "__auto", instant: bool = False,
          fmt: prometheus_model.PromQueryFormat | None = None) -> prometheus.Dataquery:
    q = (prometheus.Dataquery().expr(expr).legend_format(legend).editor_mode(prometheus_model.QueryEditorMode.CODE)
         .datasource(DATASOURCE))
    q = q.instant() if instant else q.range()
    return q.format(fmt) if fmt else q


def rate(selector: str, window: str = "$__rate_interval") -> str:
    return f"rate({selector}[{window}])"


def zero_when_none(expr: str) -> str:
    """`expr` (one label-less series), or 0 while Prometheus scrapes any replica. Error counters appear
    at their first increment, so on a healthy fleet the plain query is empty and Grafana shows "No
    data", which reads as broken; this line is 0 instead, and empty only when no replica is known."""
    return f"{expr} or sum({series('up', JOB)}) * 0"


def ratio(by: str, good: str, total: str) -> str:
    """sum by (`by`) of the rate of `good` over that of `total`."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} ({rate(good)}) / sum{grouping} ({rate(total)})"


def quantiles(name: str, by: str = "", legend_prefix: str = "") -> list[prometheus.Dataquery]:
    grouping = f"{by}, le" if by else "le"
    prefix = f"{legend_prefix} " if legend_prefix else ""
    return [query(f"histogram_quantile({q}, sum by ({grouping}) ({rate(series(name))}))", f"{prefix}p{int(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


PanelBuilder = TypeVar("PanelBuilder", timeseries.Panel, stat.Panel, table.Panel, heatmap.Panel, bargauge.Panel)


def _panel(panel: PanelBuilder, title: str, description: str, queries: Sequence[prometheus.Dataquery],
           width: int, height: int) -> PanelBuilder:
    """`panel` with its title, description, the `datasource` variable, its size and its queries A, B, ..."""
    for ref, q in zip(ascii_uppercase, queries, strict=False):
        panel = panel.with_target(q.ref_id(ref))
    return panel.title(title).description(description).datasource(DATASOURCE).span(width).height(height)


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    return builders.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


def graph(title: str, description: str, queries: Sequence[prometheus.Dataquery], unit: str = "short",
          stack: bool = False, max_value: float | None = None, width: int = 12, height: int = 8) -> timeseries.Panel:
    panel = (timeseries.Panel().unit(unit).min(0).fill_opacity(10).line_width(1)
             .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL if stack else common.StackingMode.NONE).group("A"))
             .legend(common_builders.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
                     .placement(common.LegendPlacement.BOTTOM).show_legend(True).calcs(["mean", "max", "lastNotNull"]))
             .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)))
    if max_value is not None:
        panel = panel.max(max_value)
    return _panel(panel, title, description, queries, width, height)


def single(title: str, description: str, expr: str, unit: str, steps: Sequence[tuple[float | None, str]],
           legend: str = "", width: int = 4, height: int = 5) -> stat.Panel:
    panel = (stat.Panel().unit(unit).thresholds(thresholds(*steps))
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields(""))
             .color_mode(common.BigValueColorMode.BACKGROUND).graph_mode(common.BigValueGraphMode.AREA)
             .text_mode(common.BigValueTextMode.AUTO))
    return _panel(panel, title, description, [query(expr, legend, instant=True)], width, height)


def heat(title: str, description: str, expr: str, unit: str) -> heatmap.Panel:
    panel = (heatmap.Panel().calculate(False)
             .y_axis(heatmap.YAxisConfig().unit(unit).axis_placement(common.AxisPlacement.LEFT))
             .color(heatmap.HeatmapColorOptions().mode(heatmap_model.HeatmapColorMode.SCHEME).scheme("Oranges").exponent(0.5).steps(64))
             .cell_gap(1).show_legend().show_y_histogram())
    return _panel(panel, title, description, [query(expr, "{{le}}", fmt=prometheus_model.PromQueryFormat.HEATMAP)], 12, 8)


def burn_rates(sli: str) -> timeseries.Panel:
    name = SLIS[sli]
    panel = graph(f"Burn rate, {name}", f"Error ratio of the {name} SLI over its error budget "
                  f"(objective {objective(sli)}), per resource, over the long windows of the multi-window alerts "
                  f"{slo_alerts(sli)}; a burn rate of 1 spends the {SLO.window} budget in {SLO.window}. Lines: "
                  "the burn rates at which the alert pairs fire (red: page, orange: ticket) "
                  + ", ".join(f"{w} {b:g}" for w, (b, _) in BURN_RATES.items()) + ".",
                  [query(series(f"resource:acs_sms_delivery_{sli}:burn_rate{w}"), f"{{{{resource}}}} {w}")
                   for w in BURN_RATES])
    steps = [(None, "green"), *sorted((b, "red" if severity == "critical" else "orange")
                                      for b, severity in BURN_RATES.values())]
    return (panel.thresholds(thresholds(*steps))
            .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)))


def budget(sli: str) -> bargauge.Panel:
    name = SLIS[sli]
    panel = (bargauge.Panel().unit("percentunit").min(-1).max(1)
             .thresholds(thresholds((None, "red"), (0, "orange"), (0.25, "green")))
             .orientation(common.VizOrientation.HORIZONTAL).display_mode(common.BarGaugeDisplayMode.GRADIENT)
             .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")))
    return _panel(panel, f"Error budget left ({SLO.window}), {name}",
                  f"Share of the {SLO.window} error budget of the {name} SLI (objective {objective(sli)}) left, "
                  "per resource: 100% untouched, 0 spent, negative overspent.",
                  [query(series(budget_left(sli)), "{{resource}}", instant=True)], 6, 8)


def budget_left(sli: str) -> str:
    """The recorded series of the share of the SLO window's error budget of `sli` left."""
    return f"resource:acs_sms_delivery_{sli}:error_budget_remaining{SLO.window}"


def top_failures() -> table.Panel:
    meanings = model.ValueMap(options={code: model.ValueMappingResult(text=f"{code} {meaning}")
                                       for code, meaning in CODE_MEANINGS.items()})
    expr = (f"topk(20, sum by (resource, country, result_signature) "
            f"(increase({series(FAILURES, DR)}[$__range])) > 0)")
    panel = (table.Panel()
             .with_transformation(model.DataTransformerConfig(id_val="organize", options={
                 "excludeByName": {"Time": True},
                 "renameByName": {"Value": "failed reports"}}))
             .sort_by([common_builders.TableSortByFieldState().display_name("failed reports").desc(True)])
             .override_by_name("result_signature", [model.DynamicConfigValue(id_val="mappings", value=[meanings]),
                                                    model.DynamicConfigValue(id_val="displayName", value="code")]))
    return _panel(panel, "Top failing countries and codes (range)",
                  "Failed delivery reports over the selected time range by resource, country and ACS delivery "
                  "status code, with the code's meaning and failure class (deploy/prometheus/alerts.src.yaml; "
                  "deploy/runbook.md says what to do about each class).",
                  [query(expr, instant=True, fmt=prometheus_model.PromQueryFormat.TABLE)], 12, 8)


def outcome_classes() -> timeseries.Panel:
    if set(CLASS_COLOURS) != set(CLASSES):
        raise SystemExit(f"CLASS_COLOURS {sorted(CLASS_COLOURS)} must colour the failure classes {list(CLASSES)}")
    panel = graph("Delivery outcomes by failure class",
                  "Delivery reports per second by who owns the outcome: delivered, recipient (invalid, unknown, "
                  "opted-out or unreachable number), sender (configuration, limits, unverified number), filtered "
                  "(fraud, carrier or entitlement block), carrier (platform), unknown. The class of each code is "
                  "set in deploy/prometheus/alerts.src.yaml (recording rule " + FAILURE_CLASSES + ").",
                  [query(f"sum by (failure_class) ({series(FAILURE_CLASSES)})", "{{failure_class}}")],
                  unit="ops", stack=True)
    for name, colour in CLASS_COLOURS.items():
        panel = panel.override_by_name(name, [model.DynamicConfigValue(
            id_val="color", value={"mode": "fixed", "fixedColor": colour})])
    return panel


def sms_panels() -> Iterator[Builder[model.Panel]]:
    reports = series(OPERATIONS, DR)
    yield single("Delivery success ratio (range)", "Delivery reports with result Succeeded over all delivery "
                 "reports, over the selected time range and selection.",
                 f"sum(increase({series(OPERATIONS, DR, SUCCEEDED)}[$__range])) / sum(increase({reports}[$__range]))",
                 "percentunit", [(None, "red"), (0.9, "orange"), (0.95, "green")])
    yield single("Delivery reports (range)", "Delivery reports received in the selected time range.",
                 f"sum(increase({reports}[$__range]))", "short", [(None, "blue")])
    yield single("Messages sent (range)", "Send requests (SMSMessagesSent records) in the selected time range.",
                 f'sum(increase({series(OPERATIONS, SENT)}[$__range]))', "short",
                 [(None, "blue")])
    yield single("Inbound messages (range)", "Messages received by your numbers (SMSMessagesReceived).",
                 f'sum(increase({series(OPERATIONS, INBOUND)}[$__range]))', "short",
                 [(None, "blue")])
    yield single("Opt-outs (range)", "Opt-out keywords (STOP...) received (SMSOptOutReceived).",
                 f'sum(increase({series(OPERATIONS, OPT_OUT)}[$__range]))', "short",
                 [(None, "blue")])
    yield single("Error budget left, delivery success (worst resource)", f"The lowest share of the {SLO.window} "
                 "error budget left among the selected resources (row Error budget).",
                 f"min({series(budget_left('errors'))})", "percentunit",
                 [(None, "red"), (0, "orange"), (0.25, "green")])
    yield outcome_classes()
    yield graph("Delivery success ratio", "Overall, across the selection, recipient-owned failures included. "
                f"The delivery success SLO (objective {objective('errors')} per resource, codes "
                f"{', '.join(SLO.excluded)} excluded) alerts with {slo_alerts('errors')}: row Error budget.", [query(ratio("", series(OPERATIONS, DR, SUCCEEDED), reports), "overall")],
                unit="percentunit", max_value=1)
    for label, what in (("country", "Per country (alert AcsSmsDeliveryFailureRatioHighByCountry, per resource and "
                                    "country, fires above 10% failures with 50+ reports in 15 minutes)."),
                        ("resource", "Per ACS resource (the resource label: the name in the records' resourceId)."),
                        ("number_type", "Per number type of the sender (long code, toll-free, short code, "
                                        "alphanumeric sender ID).")):
        yield graph(f"Delivery success ratio by {label.replace('_', ' ')}", what,
                    [query(ratio(label, series(OPERATIONS, DR, SUCCEEDED), reports), f"{{{{{label}}}}}")],
                    unit="percentunit", max_value=1)
    yield graph("Delivery failures by result_signature", "Failed delivery reports per second by ACS delivery "
                "status code (4xxx rejected, 5xxx carrier, 9999 unknown: see deploy/runbook.md).",
                [query(f"sum by (result_signature) ({rate(series(FAILURES, DR))})", "{{result_signature}}")],
                unit="ops", stack=True)
    yield top_failures()
    yield graph("Opt-in, opt-out and 4007", "Opt-out (STOP...) and opt-in (START...) keywords received per second, "
                "and delivery reports refused with 4007 (the destination has opted out of this sender): a rising "
                "4007 line means messages still go to numbers that opted out.",
                [query(f'sum by (operation) ({rate(series(OPERATIONS, OPT_IN_OR_OUT))})',
                       "{{operation}}"),
                 query(zero_when_none(f"sum({rate(series(FAILURES, DR, OPTED_OUT))})"),
                       "4007 opted out (delivery reports)")], unit="ops")
    yield graph("Inbound messages", "Messages received by your numbers per second, by resource and country of the "
                "sender.", [query(f'sum by (resource, country) ({rate(series(OPERATIONS, INBOUND))})',
                                  "{{resource}} {{country}}")], unit="ops", stack=True)
    yield graph("Failures by country", "Failed SMS operations per second (sends and delivery reports) by country.",
                [query(f"sum by (country, operation) ({rate(series(FAILURES))})", "{{country}} {{operation}}")],
                unit="ops", stack=True)
    yield graph("Operations by operation and result", "SMSOperational records per second.",
                [query(f"sum by (operation, result) ({rate(series(OPERATIONS))})", "{{operation}} {{result}}")],
                unit="ops")
    yield graph("Unmatched delivery reports", "Delivery reports whose sent record was not seen within the "
                "correlation window and whose MessageId carries no send time (no latency measured for them).",
                [query(f"sum by (result) ({rate(series('acs_sms_delivery_reports_unmatched_total'))})", "{{result}}"),
                 query(zero_when_none(f"sum({rate(series('acs_sms_delivery_reports_unmatched_total'))})"), "all results")],
                unit="ops")


def sender_panels() -> Iterator[Builder[model.Panel]]:
    senders = "acs_sms_sender_operations_total"
    empty = " Empty unless pipeline.labels.senders lists your sender numbers (README, Sender numbers)."
    yield graph("Operations by sender", "SMSOperational records per second by your own sender number or "
                "alphanumeric sender ID (other: a number not listed)." + empty,
                [query(f"sum by (sender, operation) ({rate(series(senders))})", "{{sender}} {{operation}}")], unit="ops")
    yield graph("Delivery success ratio by sender", "Delivery reports Succeeded over all delivery reports, per "
                "sender." + empty, [query(ratio("sender", series(senders, DR, SUCCEEDED), series(senders, DR)),
                                          "{{sender}}")], unit="percentunit", max_value=1)


def budget_panels() -> Iterator[Builder[model.Panel]]:
    for sli in SLIS:
        yield budget(sli)
    for sli in SLIS:
        yield burn_rates(sli).span(6)


def latency_panels() -> Iterator[Builder[model.Panel]]:
    latency = "acs_sms_delivery_latency_seconds_bucket"
    yield heat("Delivery latency", "Time from the send to its delivery report: the sent record with the same "
               "MessageId, or the send time in the MessageId when another replica saw the send.",
               f"sum by (le) (increase({series(latency)}[$__rate_interval]))", "s")
    yield graph("Delivery latency coverage by source", "Share of delivery reports that got a latency: paired with "
                "their sent record (exact) or from the send time in their MessageId (±0.5 s; the send was on "
                "another replica). Near 100% in total when ACS MessageIds carry their send time.",
                [query(f"sum by (source) ({rate(series('acs_sms_delivery_latency_seconds_count'))}) / scalar("
                       f"sum({rate(series(OPERATIONS, DR))}))", "{{source}}")],
                unit="percentunit", max_value=1, stack=True)
    yield graph("Delivery latency quantiles", f"The delivery latency SLO ({objective('slow')} of delivered SMS "
                f"within {SLO.latency['threshold_seconds']} s, per resource) alerts with {slo_alerts('slow')}: "
                "row Error budget.",
                quantiles(latency), unit="s")
    yield heat("API duration", "DurationMs of SMSOperational records.",
               f"sum by (le) (increase({series('acs_sms_api_duration_seconds_bucket')}[$__rate_interval]))", "s")
    yield graph("API duration quantiles by operation", "Alert AcsSmsApiDurationHigh: p99 above 5 seconds.",
                quantiles("acs_sms_api_duration_seconds_bucket", "operation", "{{operation}}"), unit="s")
    yield graph("Delivery attempts p95", "DeliveryAttempts of delivery reports, by result.",
                [query(f"histogram_quantile(0.95, sum by (result, le) ({rate(series('acs_sms_delivery_attempts_bucket'))}))",
                       "{{result}} p95")])


def usage_panels() -> Iterator[Builder[model.Panel]]:
    usage = series("acs_usage_quantity_total")
    yield graph("Usage quantity by usage_type", "Sum of Quantity of Usage records per second, by resource, "
                "usage and unit type.", [query(f"sum by (resource, usage_type, unit_type) ({rate(usage)})",
                                               "{{resource}} {{usage_type}} ({{unit_type}})")], stack=True, width=8)
    yield _panel(bargauge.Panel().unit("short").orientation(common.VizOrientation.HORIZONTAL)
                 .display_mode(common.BarGaugeDisplayMode.GRADIENT)
                 .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")),
                 "Usage quantity in the range", "Quantity by resource, usage and unit type over the selected time range.",
                 [query(f"sum by (resource, usage_type, unit_type) (increase({usage}[$__range]))",
                        "{{resource}} {{usage_type}} ({{unit_type}})", instant=True)], 8, 8)
    yield graph("Message characters", "Outgoing/IncomingMessageLength per second.",
                [query(f"sum by (direction) ({rate(series('acs_sms_message_characters_total'))})", "{{direction}}")],
                width=8)


def consumer_panels() -> Iterator[Builder[model.Panel]]:
    yield graph("Lag per partition (events)", "Last enqueued minus last processed sequence number "
                "(alert AcsSmsConsumerLagHigh: above 10000 for 15 minutes).",
                [query(f"max by (partition) ({series('acs_consumer_partition_lag_events')})", "{{partition}}")])
    yield graph("Throughput per partition", "Event Hubs events received per second.",
                [query(f"sum by (partition) ({rate(series('acs_consumer_events_total'))})", "{{partition}}")],
                unit="ops", stack=True)
    yield graph("Event age", "Processing time minus enqueued time (alert AcsSmsConsumerEventAgeHigh: p95 above "
                "5 minutes), and the age of the newest processed event per partition.",
                [*quantiles("acs_consumer_event_age_seconds_bucket"),
                 query(f"time() - max by (partition) ({series('acs_consumer_last_event_timestamp_seconds')})",
                       "newest event, partition {{partition}}")], unit="s")
    yield graph("Records by outcome", "Records per second by category and outcome "
                "(processed, invalid, skipped, duplicate).",
                [query(f"sum by (category, outcome) ({rate(series('acs_consumer_records_total'))})",
                       "{{category}} {{outcome}}")], unit="ops", stack=True)
    yield graph("Checkpoints", "Checkpoint writes per second by partition and outcome; errors are the red flag. "
                "Checkpoints follow the /metrics scrapes; 'unscraped' are the checkpoints written past the "
                "last scrape because none had come for checkpoint.no_scrape_seconds (Prometheus down).",
                [query(f"sum by (partition, outcome) ({rate(series('acs_consumer_checkpoints_total'))})",
                       "{{partition}} {{outcome}}"),
                 query(zero_when_none(f"sum(increase({series('acs_consumer_checkpoints_total', ERROR)}[$__rate_interval]))"),
                       "errors (all partitions)"),
                 query(zero_when_none(f"sum(increase({series('acs_consumer_unscraped_checkpoints_total')}[$__rate_interval]))"),
                       "unscraped (all replicas)")], unit="ops")
    yield graph("Decode errors and dead letters", "Bodies that yielded no records, by reason, and what the "
                "dead-letter writer did with them, by outcome.",
                [query(f"sum by (reason) (increase({series('acs_consumer_decode_errors_total')}[$__rate_interval]))",
                       "decode error: {{reason}}"),
                 query(f"sum by (outcome) (increase({series('acs_consumer_dead_letters_total')}[$__rate_interval]))",
                       "dead letter: {{outcome}}"),
                 query(zero_when_none(f"sum(increase({series('acs_consumer_decode_errors_total')}[$__rate_interval]))"),
                       "decode errors (all reasons)")])
    yield graph("Client errors by kind", "Errors reported by the Event Hubs client or the checkpoint store.",
                [query(f"sum by (kind) (increase({series('acs_consumer_errors_total')}[$__rate_interval]))", "{{kind}}"),
                 query(zero_when_none(f"sum(increase({series('acs_consumer_errors_total')}[$__rate_interval]))"),
                       "all kinds")])
    yield graph("Replicas: up and owned partitions", "Scrape health and partitions owned by each replica.",
                [query(series("up", JOB), "up {{instance}}"),
                 query(f"sum by (instance) ({series('acs_consumer_owned_partitions')})", "partitions {{instance}}")])
    yield graph("Replica CPU and memory", "From the process collector of each replica.",
                [query(rate(series("process_cpu_seconds_total", JOB)), "cpu {{instance}}"),
                 query(f"{series('process_resident_memory_bytes', JOB)} / 2^30", "memory GiB {{instance}}")])


# --- variables and the dashboard ----------------------------------------------------------------

#: name → (label shown, label_values query).
QUERY_VARIABLES: Final = {
    "cluster": ("Cluster", "label_values(acs_consumer_build_info, cluster)"),
    "resource": ("ACS resource", "label_values(acs_sms_operations_total, resource)"),
    "country": ("Country", "label_values(acs_sms_operations_total, country)"),
    "number_type": ("Number type", "label_values(acs_sms_operations_total, number_type)"),
    "sender": ("Sender", "label_values(acs_sms_sender_operations_total, sender)"),
    "partition": ("Partition", "label_values(acs_consumer_events_total, partition)"),
}


def variables() -> Iterator[Builder[model.VariableModel]]:
    yield (builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
           .current(model.VariableOption(text=f"${{{DATASOURCE_INPUT}}}", value=f"${{{DATASOURCE_INPUT}}}")))
    for name, (label, definition) in QUERY_VARIABLES.items():
        # All is `.*`, which also matches a series without the label: with no cluster label anywhere
        # the variable offers only All and every panel shows everything.
        yield (builders.QueryVariable(name).label(label).datasource(DATASOURCE)
               .query({"query": definition, "refId": name}).multi(True).include_all(True).all_value(".*")
               .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
               .sort(model.VariableSort.NATURAL_ASC if name == "partition" else model.VariableSort.ALPHABETICAL_ASC))


def build() -> model.Dashboard:
    board = (builders.Dashboard("ACS SMS consumer").uid("acs-sms-consumer")
             .description("Azure Communication Services SMS delivery, failure classes, opt-outs, error budgets, "
                          "latency and usage from the diagnostic logs, and the health of acs-sms-consumer. "
                          "Runbook: deploy/runbook.md; panels: docs/dashboard.md.")
             .tags(["acs", "sms", "event-hubs"]).timezone("utc").editable()
             .tooltip(model.DashboardCursorSync.CROSSHAIR).refresh("1m").version(1).time("now-6h", "now"))
    for variable in variables():
        board = board.with_variable(variable)
    board = board.annotation(builders.AnnotationQuery().name("Firing alerts").datasource(DATASOURCE).enable(True)
                             .icon_color("red").expr(FIRING_ALERTS))
    for title, panels in (("SMS delivery", sms_panels()), ("Sender numbers", sender_panels()),
                          ("Error budget", budget_panels()), ("Latency", latency_panels()), ("Usage", usage_panels())):
        board = board.with_row(builders.Row(title).datasource(DATASOURCE))
        for panel in panels:
            board = board.with_panel(panel)
    consumer = builders.Row("Consumer health").datasource(DATASOURCE).collapsed(True)
    for panel in consumer_panels():
        consumer = consumer.with_panel(panel)
    dashboard = board.with_row(consumer).build()
    for number, panel in enumerate(all_panels(dashboard.panels or []), start=1):
        panel.id_val = number
    return dashboard


def all_panels(panels: Sequence[model.Panel | model.RowPanel]) -> Iterator[model.Panel | model.RowPanel]:
    for panel in panels:
        yield panel
        if isinstance(panel, model.RowPanel):
            yield from panel.panels or []


def requires(dashboard: model.Dashboard) -> list[dict[str, str]]:
    """`__requires` of a grafana.com-style export: Grafana, the data source and every panel plugin."""
    kinds = sorted({p.type_val for p in all_panels(dashboard.panels or []) if isinstance(p, model.Panel)})
    return [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": kind, "version": ""} for kind in kinds)]


def document() -> dict[str, Any]:
    """The dashboard JSON: the SDK's model with the import inputs in front."""
    dashboard = build()
    encoded = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    inputs = [{"name": DATASOURCE_INPUT, "label": "Prometheus", "description": "The Prometheus data source "
               "that scrapes acs-sms-consumer (Azure Monitor managed Prometheus in Azure Managed Grafana).",
               "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}]
    return {"__inputs": inputs, "__requires": requires(dashboard), **encoded}


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is out of date")
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
