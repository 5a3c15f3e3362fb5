"""The SLO part of the alert rules, built from the `slo:` and `failure_classes:` settings of
deploy/prometheus/alerts.src.yaml: the SLI recording rules per ACS resource, the error-budget and
burn-rate rules the dashboard reads, the failure-class rule, and the multi-window, multi-burn-rate
alerts (Google SRE workbook). Each setting is validated here, with a message naming it.

Names follow `level:metric:operations` and are fixed with the dashboard (see docs/alerting.md):
    resource:acs_sms_delivery_reports:rate<W>                  all delivery reports per second
    resource:acs_sms_delivery_errors:ratio_rate<W>             delivery-success SLI error ratio
    resource:acs_sms_delivery_latency_observations:rate<W>     delivered reports with a latency, per second
    resource:acs_sms_delivery_slow:ratio_rate<W>               latency SLI error ratio
    resource:acs_sms_delivery_<errors|slow>:burn_rate<W>       ratio ÷ error budget (burn-rate windows)
    resource:acs_sms_delivery_<errors|slow>:error_budget_remaining<SLO window>
    resource_country_class:acs_sms_delivery_reports:rate5m     delivery reports by failure class
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

DELIVERY_REPORTS = 'operation="SMSDeliveryReportsReceived"'
#: The failure classes a result code can be given (`delivered` is the Succeeded reports, no code).
FAILURE_CLASSES = ("recipient", "sender", "filtered", "carrier", "unknown")
#: The label every SLI series carries besides the installation labels.
RESOURCE = "resource"
#: SLI → the word its alerts are named with (AcsSmsDelivery<word>BudgetBurn<name_suffix>).
ALERT_TITLES = {"errors": "Errors", "slow": "Latency"}
_DURATION = re.compile(r"(\d+)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class SettingError(SystemExit):
    """A setting of alerts.src.yaml that cannot be used: the message names it and says why."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"alerts.src.yaml: {where}: {problem}")


def seconds(duration: str, where: str) -> int:
    """A Prometheus duration of one unit (`5m`, `1d`) in seconds."""
    match = _DURATION.fullmatch(str(duration))
    if match is None or int(match.group(1)) == 0:
        raise SettingError(where, f"{duration!r} is not a duration like 5m, 1h, 30d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def number(value: float) -> str:
    """A float as PromQL reads it, without binary noise (1 - 0.99 is 0.01, not 0.010000000000000009)."""
    text = repr(round(float(value), 12))
    return text[:-2] if text.endswith(".0") else text


class Slo:
    """The validated settings, and the rules they give."""

    def __init__(self, source: dict[str, Any], latency_buckets: Sequence[float]) -> None:
        self.installation: list[str] = list(source.get("installation_labels") or [])
        if not self.installation or not all(re.fullmatch(r"[a-zA-Z_]\w*", n) for n in self.installation):
            raise SettingError("installation_labels", "a list of label names (e.g. [namespace, job])")
        settings = source["slo"]
        self.window = settings["window"]
        seconds(self.window, "slo.window")
        self.windows: list[str] = list(settings["sli_windows"])
        for w in self.windows:
            seconds(w, "slo.sli_windows")
        if self.window not in self.windows:
            raise SettingError("slo.sli_windows", f"must contain the SLO window {self.window}")
        self.burn_windows: list[str] = list(settings["burn_rate_windows"])
        if not set(self.burn_windows) <= set(self.windows):
            raise SettingError("slo.burn_rate_windows", f"{self.burn_windows} must be SLI windows {self.windows}")
        #: code → its class, and code → the reason it sits there (the text of its entry).
        self.codes, self.reasons = self._classes(source["failure_classes"])
        self.delivery = settings["delivery"]
        self.latency = settings["latency"]
        self.objectives = {
            "errors": self._objective(self.delivery, "slo.delivery.objective"),
            "slow": self._objective(self.latency, "slo.latency.objective"),
        }
        self.excluded = [str(code) for code in self.delivery["excluded_codes"]]
        not_recipient = [c for c in self.excluded if self.codes.get(c) != "recipient"]
        if not_recipient:
            raise SettingError("slo.delivery.excluded_codes",
                               f"{not_recipient} are not in failure_classes.recipient: only failures the "
                               "recipient owns may be excluded from the delivery SLI")
        threshold = float(self.latency["threshold_seconds"])
        if threshold not in [float(b) for b in latency_buckets]:
            raise SettingError("slo.latency.threshold_seconds",
                               f"{self.latency['threshold_seconds']} is not a bucket boundary of "
                               f"acs_sms_delivery_latency_seconds {list(latency_buckets)} (consumer/settings.py "
                               "Buckets): the share within it could not be counted")
        self.le = repr(threshold)  # as the consumer writes the bound (`300.0`)
        self.alerts = settings["alerts"]
        for i, alert in enumerate(self.alerts):
            self._check_alert(alert, f"slo.alerts[{i}]")

    # --- validation ---------------------------------------------------------------------------

    @staticmethod
    def _objective(section: dict[str, Any], where: str) -> float:
        value = section.get("objective")
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise SettingError(where, f"{value!r} must be a fraction between 0 and 1 (0.99 = 99 %)")
        return float(value)

    @staticmethod
    def _classes(table: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """(code → class, code → reason), from `failure_classes: {class: {code: reason}}`; each code in
        one class."""
        codes: dict[str, str] = {}
        reasons: dict[str, str] = {}
        for name, entries in table.items():
            if name not in FAILURE_CLASSES:
                raise SettingError(f"failure_classes.{name}", f"not a failure class; use one of {list(FAILURE_CLASSES)}")
            for code, reason in (entries or {}).items():
                code = str(code)
                if not re.fullmatch(r"\d{3,5}", code):
                    raise SettingError(f"failure_classes.{name}.{code}", "a result code is 3 to 5 digits")
                if not (isinstance(reason, str) and reason.strip()):
                    raise SettingError(f"failure_classes.{name}.{code}", "give the reason the code sits here")
                if code in codes:
                    raise SettingError(f"failure_classes.{name}.{code}", f"already in class {codes[code]}")
                codes[code] = name
                reasons[code] = reason.strip()
        return codes, reasons

    def _check_alert(self, alert: dict[str, Any], where: str) -> None:
        if alert.get("severity") not in {"critical", "warning", "info"}:
            raise SettingError(f"{where}.severity", "critical (page), warning (ticket) or info")
        seconds(alert.get("for", ""), f"{where}.for")
        for j, pair in enumerate(alert["windows"]):
            at = f"{where}.windows[{j}]"
            if pair["long"] not in self.burn_windows:
                raise SettingError(f"{at}.long", f"{pair['long']} must be a burn-rate window {self.burn_windows}")
            if pair["short"] not in self.windows:
                raise SettingError(f"{at}.short", f"{pair['short']} must be an SLI window {self.windows}")
            if seconds(pair["short"], at) >= seconds(pair["long"], at):
                raise SettingError(at, "the short window must be shorter than the long one")
            if not (isinstance(pair.get("burn_rate"), (int, float)) and pair["burn_rate"] > 0):
                raise SettingError(f"{at}.burn_rate", "a positive number")
            if not (isinstance(pair.get("min_events"), int) and pair["min_events"] > 0):
                raise SettingError(f"{at}.min_events", "a positive whole number of reports in the long window")

    @property
    def meanings(self) -> dict[str, str]:
        """code → what it means: the text of its entry before " - " (the rest says why it sits in its
        class), as the dashboard's failing-codes table and docs/alerting.md show it."""
        return {code: reason.split(" - ", 1)[0].strip() for code, reason in self.reasons.items()}

    # --- expressions --------------------------------------------------------------------------

    @property
    def by(self) -> str:
        return ", ".join([*self.installation, RESOURCE])

    def budget(self, sli: str) -> str:
        return number(1 - self.objectives[sli])

    def _codes(self, codes: Sequence[str]) -> str:
        return "|".join(sorted(codes, key=int))

    def _sum_rate(self, selector: str, window: str, extra: Sequence[str] = ()) -> str:
        by = ", ".join([*self.installation, RESOURCE, *extra])
        return f"sum by ({by}) (rate({selector}[{window}]))"

    def recording_rules(self) -> list[dict[str, str]]:
        rules: list[dict[str, str]] = []
        for w in self.windows:
            reports = f"resource:acs_sms_delivery_reports:rate{w}"
            observations = f"resource:acs_sms_delivery_latency_observations:rate{w}"
            failures = self._sum_rate(
                f'acs_sms_failures_total{{{DELIVERY_REPORTS},result_signature!~"{self._codes(self.excluded)}"}}', w)
            fast = self._sum_rate(f'acs_sms_delivery_latency_seconds_bucket{{result="Succeeded",le="{self.le}"}}', w)
            rules += [
                {"record": reports, "expr": self._sum_rate(f"acs_sms_operations_total{{{DELIVERY_REPORTS}}}", w)},
                {"record": f"resource:acs_sms_delivery_errors:ratio_rate{w}",
                 "expr": f"(\n  {failures}\n  or\n  0 * {reports}\n)\n/\n{reports}"},
                {"record": observations,
                 "expr": self._sum_rate('acs_sms_delivery_latency_seconds_count{result="Succeeded"}', w)},
                {"record": f"resource:acs_sms_delivery_slow:ratio_rate{w}", "expr": f"1 - (\n  {fast}\n  /\n  {observations}\n)"},
            ]
        for sli in ("errors", "slow"):
            for w in self.burn_windows:
                rules.append({"record": f"resource:acs_sms_delivery_{sli}:burn_rate{w}",
                              "expr": f"resource:acs_sms_delivery_{sli}:ratio_rate{w} / {self.budget(sli)}"})
            rules.append({"record": f"resource:acs_sms_delivery_{sli}:error_budget_remaining{self.window}",
                          "expr": f"1 - resource:acs_sms_delivery_{sli}:ratio_rate{self.window} / {self.budget(sli)}"})
        rules.append({"record": "resource_country_class:acs_sms_delivery_reports:rate5m", "expr": self.class_expr()})
        return rules

    def class_expr(self) -> str:
        """Delivery reports per second by failure class: delivered (Succeeded reports), each class of
        the table by result code, and `unknown` for every code in no class (`other` included)."""
        extra = ("country", "number_type")

        def labelled(cls: str, expr: str) -> str:
            return f'label_replace(\n  {expr},\n  "failure_class", "{cls}", "failure_class", ""\n)'

        parts = [labelled("delivered", self._sum_rate(
            f'acs_sms_operations_total{{{DELIVERY_REPORTS},result="Succeeded"}}', "5m", extra))]
        for cls in FAILURE_CLASSES:
            codes = [code for code, c in self.codes.items() if c == cls]
            if cls == "unknown":
                matcher = f'result_signature!~"{self._codes([c for c, k in self.codes.items() if k != cls])}"'
            elif codes:
                matcher = f'result_signature=~"{self._codes(codes)}"'
            else:
                continue
            parts.append(labelled(cls, self._sum_rate(
                f"acs_sms_failures_total{{{DELIVERY_REPORTS},{matcher}}}", "5m", (*extra, "result_signature"))))
        return "\nor\n".join(parts)

    def alert_rules(self) -> list[dict[str, Any]]:
        """The burn-rate alerts: per SLI and `slo.alerts` entry, one alert whose window pairs are OR-ed,
        so that one incident gives one alert per resource."""
        out = []
        for sli, guard in (("errors", "reports"), ("slow", "latency_observations")):
            for alert in self.alerts:
                pairs = []
                for pair in alert["windows"]:
                    long_, short = pair["long"], pair["short"]
                    pairs.append(
                        f"(\n  resource:acs_sms_delivery_{sli}:burn_rate{long_} > {number(pair['burn_rate'])}\n"
                        f"  and\n  resource:acs_sms_delivery_{sli}:ratio_rate{short} > "
                        f"{number(pair['burn_rate'] * (1 - self.objectives[sli]))}\n"
                        f"  and\n  resource:acs_sms_delivery_{guard}:rate{long_} * {seconds(long_, long_)} >= "
                        f"{pair['min_events']}\n)")
                out.append({
                    "alert": self.alert_name(sli, alert),
                    "expr": "\nor\n".join(pairs) + "\n",
                    "for": alert["for"],
                    "severity": alert["severity"],
                    "summary": self._summary(sli),
                    "description": self._description(sli, alert),
                })
        return out

    @staticmethod
    def alert_name(sli: str, alert: dict[str, Any]) -> str:
        """The name of the burn-rate alert of `sli` ("errors", "slow") for one `slo.alerts` entry."""
        return f"AcsSmsDelivery{ALERT_TITLES[sli]}BudgetBurn{alert['name_suffix']}"

    def _summary(self, sli: str) -> str:
        what = "fail" if sli == "errors" else f"are delivered slower than {self.latency['threshold_seconds']} s"
        return (f"SMS of ACS resource {{{{ $labels.resource }}}} {what} fast enough to spend the "
                f"{self.window} error budget")

    def _description(self, sli: str, alert: dict[str, Any]) -> str:
        objective = f"{number(self.objectives[sli] * 100)} %"
        if sli == "errors":
            sli_text = (f"delivery success objective ({objective} of delivery reports not failed for a reason "
                        f"the platform, carrier or sender owns; codes {', '.join(self.excluded)} excluded)")
        else:
            sli_text = f"latency objective ({objective} of delivered SMS within {self.latency['threshold_seconds']} s)"
        pairs = ", ".join(f"{p['long']}/{p['short']} at {number(p['burn_rate'])}x" for p in alert["windows"])
        return (f"ACS resource {{{{ $labels.resource }}}} spends the {self.window} error budget of its {sli_text} "
                f"{{{{ $value | humanize }}}} times as fast as it lasts (windows {pairs}).")

    def substitutions(self) -> dict[str, str]:
        """The `$name` tokens the hand-written expressions of alerts.src.yaml may use."""
        return {"$installation": ", ".join(self.installation), "$excluded_codes": self._codes(self.excluded)}
