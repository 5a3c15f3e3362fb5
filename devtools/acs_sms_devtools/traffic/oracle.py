"""The ground truth of a traffic run (`Stats`): what was emitted, counted under the label values the
consumer's metrics use, so that tests assert exact metric values."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from consumer.labels import DELIVERY_REPORT, RECEIVED, SENT, SMS_OPERATIONAL, USAGE

from ..scrape import Samples
from .vocabulary import FAILED, SUCCEEDED, TICKS_PER_SECOND

__all__ = ["Stats"]

@dataclass
class Stats:
    """What was emitted, counted under the label values the consumer's metrics use, so that an
    end-to-end test can assert exact metric values (`operations` ≙ `acs_sms_operations_total`,
    `failures` ≙ `acs_sms_failures_total`, `usage_*` ≙ `acs_usage_*`, ...).

    Feed it records in time order with `observe`; it pairs delivery reports with their sends by
    `MessageId` (which is why it needs the simulated time `at`).
    """

    records: int = 0
    bodies: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    #: (operation, result, number_type, country, resource) of SMSOperational records; `resource`: the
    #: last segment of `resourceId`, lower-cased (the consumer's `resource` label).
    operations: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    #: (operation, result_signature, number_type, country, resource) of failed SMSOperational records.
    failures: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    #: delivery reports by (result, DeliveryAttempts).
    delivery_attempts: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: delivery reports whose send was observed earlier, by (result, number_type, resource).
    delivery_pairs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    delivery_latency_sum: float = 0.0
    #: delivery reports whose send was not observed (never when fed the generator's whole stream), by
    #: (result, number_type, resource): the consumer takes their send time from the MessageId (the second
    #: of the send, +0.5 s), which `message_id_latency_sum` adds up as the consumer does (clamped at 0).
    message_id_reports: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    message_id_latency_sum: float = 0.0
    #: all of those reports (the consumer's unmatched count with `latency_from_message_id: false`)
    unmatched_reports: int = 0
    countries: Counter[str] = field(default_factory=Counter)
    #: characters by direction (`outgoing`, `incoming`).
    characters: Counter[str] = field(default_factory=Counter)
    #: by (usage_type, unit_type, resource)
    usage_records: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    usage_quantity: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _awaiting: dict[str, float] = field(default_factory=dict, repr=False)

    def observe(self, record: Mapping[str, Any], at: float) -> None:
        """Count one record emitted at simulated offset `at` (seconds)."""
        self.records += 1
        category = record["category"]
        self.categories[category] += 1
        props = record["properties"]
        resource = record["resourceId"].rsplit("/", 1)[1].lower()
        if category == USAGE:
            key = (props["UsageType"], props["UnitType"], resource)
            self.usage_records[key] += 1
            self.usage_quantity[key] += props["Quantity"]
            return
        if category != SMS_OPERATIONAL:
            return
        operation = record["operationName"]
        result = record["resultType"]
        number_type = props["NumberType"]
        country = props["Country"]
        self.operations[(operation, result, number_type, country, resource)] += 1
        self.countries[country] += 1
        if result != SUCCEEDED:
            self.failures[(operation, str(record["resultSignature"]), number_type, country, resource)] += 1
        if props["OutgoingMessageLength"]:
            self.characters["outgoing"] += props["OutgoingMessageLength"]
        if props["IncomingMessageLength"]:
            self.characters["incoming"] += props["IncomingMessageLength"]
        if operation == SENT and result == SUCCEEDED:
            self._awaiting[props["MessageId"]] = at
        elif operation == DELIVERY_REPORT:
            self.delivery_attempts[(result, props["DeliveryAttempts"])] += 1
            sent_at = self._awaiting.pop(props["MessageId"], None)
            if sent_at is None:
                self.unmatched_reports += 1
                self.message_id_reports[(result, number_type, resource)] += 1
                self.message_id_latency_sum += max(0.0, _seconds_since_id(record["time"], props["MessageId"]) - 0.5)
            else:
                self.delivery_pairs[(result, number_type, resource)] += 1
                self.delivery_latency_sum += at - sent_at

    def expected_samples(self) -> Samples:
        """The samples the consumer exports after counting exactly these records (each once, none
        invalid), keyed as :func:`acs_sms_devtools.scrape.parse` keys a scrape: the exact counters, by
        their full label sets (operations, failures, usage, characters, records by category and outcome, and the
        delivery-latency counts by `source`). Latency sums are floats: compare them with a tolerance
        (`delivery_latency_sum`, `message_id_latency_sum`). Families absent here are not predicted."""
        out: Samples = {}

        def put(name: str, value: float, **labels: str) -> None:
            if value:
                out[(name, tuple(sorted(labels.items())))] = float(value)

        for (operation, result, number_type, country, resource), n in self.operations.items():
            put("acs_sms_operations_total", n, operation=operation, result=result, number_type=number_type,
                country=country, resource=resource)
        for (operation, signature, number_type, country, resource), n in self.failures.items():
            put("acs_sms_failures_total", n, operation=operation, result_signature=signature,
                number_type=number_type, country=country, resource=resource)
        for (usage_type, unit_type, resource), n in self.usage_records.items():
            put("acs_usage_records_total", n, usage_type=usage_type, unit_type=unit_type, resource=resource)
            put("acs_usage_quantity_total", self.usage_quantity[(usage_type, unit_type, resource)],
                usage_type=usage_type, unit_type=unit_type, resource=resource)
        for direction, n in self.characters.items():
            put("acs_sms_message_characters_total", n, direction=direction)
        for source, counts in (("paired", self.delivery_pairs), ("message_id", self.message_id_reports)):
            for (result, number_type, resource), n in counts.items():
                put("acs_sms_delivery_latency_seconds_count", n, result=result, number_type=number_type,
                    source=source, resource=resource)
        for category, n in self.categories.items():
            outcome = "processed" if category in (SMS_OPERATIONAL, USAGE) else "skipped"
            put("acs_consumer_records_total", n, category=category, outcome=outcome)
        return out

    @property
    def awaiting_reports(self) -> int:
        """Accepted sends whose delivery report has not been observed (yet)."""
        return len(self._awaiting)

    def by_operation(self) -> Counter[tuple[str, str]]:
        """SMSOperational records by (operation, result)."""
        out: Counter[tuple[str, str]] = Counter()
        for (operation, result, *_), n in self.operations.items():
            out[(operation, result)] += n
        return out

    def share_failed(self, operation: str) -> float:
        """Share of `operation` records that failed (0.0 when there are none)."""
        counts = self.by_operation()
        total = sum(n for (op, _), n in counts.items() if op == operation)
        return counts[(operation, FAILED)] / total if total else 0.0

    def summary(self) -> str:
        """One line for humans."""
        ops = self.by_operation()
        sent = ops[(SENT, SUCCEEDED)] + ops[(SENT, FAILED)]
        reports = sum(n for (op, _), n in ops.items() if op == DELIVERY_REPORT)
        return (
            f"{self.records} records in {self.bodies} bodies: {sent} sends ({ops[(SENT, FAILED)]} failed), "
            f"{reports} delivery reports ({ops[(DELIVERY_REPORT, FAILED)]} failed), "
            f"{ops[(RECEIVED, SUCCEEDED)]} received, {self.categories[USAGE]} usage, "
            f"{sum(n for c, n in self.categories.items() if c not in (SMS_OPERATIONAL, USAGE))} other"
        )


def _seconds_since_id(time: str, message_id: str) -> float:
    """A record's `time` (as the generator writes it) minus the whole second in an
    `Outgoing_<yyyyMMddHHmmss>...` MessageId: the oracle's own arithmetic, independent of the
    consumer's parser."""
    sent = datetime.strptime(message_id[9:23], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    at = datetime.strptime(time[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (at - sent).total_seconds() + int(time[20:27]) / TICKS_PER_SECOND
