"""One event body → metric updates: decode → records → duplicates → correlation → metrics.

`Pipeline.process` is the only entry point, shared by `run` (live Event Hubs) and `replay` (files),
so both make exactly the same metrics of the same bytes. It is synchronous and does no I/O and no
logging: the caller passes the processing time and gets back a `BodyResult` that says what happened
(with reasons for what was rejected), which the shell logs with the partition and sequence number.

Which records count where:
- every SMSOperational record counts in `acs_sms_operations_total`; those whose ResultType is present
  and not `Succeeded` also in `acs_sms_failures_total`;
- a successful send and a delivery report with the same MessageId make one latency observation;
  a report that cannot be matched (no MessageId, no usable time, or its send never seen within the
  window) counts in `acs_sms_delivery_reports_unmatched_total`;
- a record identical in category, operation, id (MessageId / RecordId), time and result to one seen
  within the duplicate window is a `duplicate` and adds nothing else: Azure Monitor delivers
  resource logs at least once;
- a record without a usable time still counts, but adds nothing to age or latency histograms.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer.config import PipelineSettings
from consumer.correlation import DeliveryCorrelator, ExpiringMap, Waiting
from consumer.decode import DecodeError, decode_body
from consumer.labels import (
    DELIVERY_REPORT,
    NUMBER_TYPES,
    OTHER,
    RESULTS,
    SENT,
    SMS_OPERATIONAL,
    SMS_OPERATIONS,
    SUCCEEDED,
    USAGE,
    FirstSeen,
    KnownValues,
    Names,
    ResultSignatures,
    country,
)
from consumer.metrics import DomainMetrics
from consumer.records import Invalid, Skipped, SmsOperational, Usage, normalise

#: How many invalid-record reasons a BodyResult keeps for the logs (the count is always exact).
MAX_REASONS = 5

#: How many distinct raw (operation, result type, number type, country) tuples keep their bounded
#: label tuple memoised; when full the memo is emptied, so hostile input cannot grow it.
LABEL_MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class EventContext:
    """Where a body came from, for the `partition` label and for logs (never for other labels)."""

    partition: str = ""
    sequence_number: int | None = None
    offset: str | None = None
    enqueued_time: float | None = None  # seconds since the epoch


@dataclass(slots=True)
class BodyResult:
    """What one body became. `decode_error` set means the body yielded no records at all."""

    records: int = 0
    processed: int = 0
    invalid: int = 0
    skipped: int = 0
    duplicate: int = 0
    repaired: bool = False
    decode_error: DecodeError | None = None
    detail: str = ""
    invalid_reasons: list[str] = field(default_factory=list)


class Pipeline:
    """Holds the state that outlives one body (metrics, correlation, duplicate window, label sets)."""

    def __init__(self, settings: PipelineSettings, metrics: DomainMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        limits = settings.labels
        self._operation = KnownValues(SMS_OPERATIONS)
        self._result = KnownValues(RESULTS)
        self._number_type = KnownValues(NUMBER_TYPES, missing="unknown")
        self._result_signature = ResultSignatures(limits.result_signatures, missing=OTHER)
        self._usage_type = Names(limits.usage_types, missing=OTHER)
        self._unit_type = Names(limits.unit_types, missing=OTHER)
        self._category = Names(limits.categories)
        self._category(SMS_OPERATIONAL)  # the parsed categories always have their own label value
        self._category(USAGE)
        self._partition = FirstSeen(1024)  # Event Hubs allows at most 1024 partitions
        # raw (operation_name, result_type, number_type, country) → bounded labels of acs_sms_operations
        # (the mapping is a pure function of the raw values, so memoising it changes nothing)
        self._sms_labels: dict[tuple[str | None, ...], tuple[str, str, str, str]] = {}
        # raw (usage_type, unit_type) → bounded labels; `FirstSeen` never forgets or changes a value it
        # has mapped (admitted stays admitted, refused stays refused), so memoising it changes nothing
        self._usage_labels: dict[tuple[str | None, str | None], tuple[str, str]] = {}
        self.correlator = DeliveryCorrelator(settings.correlation_max_entries, settings.correlation_max_age_seconds)
        self._seen: ExpiringMap[int, None] = ExpiringMap(settings.duplicates_max_entries, settings.duplicates_max_age_seconds)
        metrics.collector.gauge(
            "acs_sms_correlation_pending",
            "Records waiting in the correlation window for their delivery partner, by side.",
            ("side",),
            lambda: [((side,), float(n)) for side, n in self.correlator.pending().items()],
        )

    def process(self, body: bytes, now: float, context: EventContext | None = None) -> BodyResult:
        """Decode one body and reflect every record in the metrics. Never raises on bad input."""
        m = self.metrics
        if context is not None:
            m.events.inc((self._partition(context.partition),))
            if context.enqueued_time is not None:
                m.event_age.observe((), max(0.0, now - context.enqueued_time))

        decoded = decode_body(body, self.settings.max_body_bytes)
        result = BodyResult(records=len(decoded.records), repaired=decoded.repaired)
        if decoded.error is not None:
            m.decode_errors.inc((decoded.error.value,))
            result.decode_error = decoded.error
            result.detail = decoded.detail
            return result
        if decoded.repaired:
            m.repaired_bodies.inc(())

        records = m.records
        for raw in decoded.records:
            outcome = normalise(raw)
            if type(outcome) is SmsOperational:
                time = outcome.time
                stamp = None if time is None else time.timestamp()  # once per record: it is not cheap
                if self._is_duplicate(outcome, now, stamp):
                    records.inc((SMS_OPERATIONAL, "duplicate"))
                    result.duplicate += 1
                    continue
                self._sms(outcome, now, stamp)
                records.inc((SMS_OPERATIONAL, "processed"))
                result.processed += 1
            elif type(outcome) is Usage:
                if self._is_duplicate(outcome, now, None):
                    records.inc((USAGE, "duplicate"))
                    result.duplicate += 1
                    continue
                self._usage(outcome, now)
                records.inc((USAGE, "processed"))
                result.processed += 1
            elif type(outcome) is Skipped:
                records.inc((self._category(outcome.category), "skipped"))
                result.skipped += 1
            else:
                assert isinstance(outcome, Invalid)
                records.inc((self._category(outcome.category), "invalid"))
                result.invalid += 1
                if len(result.invalid_reasons) < MAX_REASONS:
                    result.invalid_reasons.append(outcome.reason)
        return result

    def expire(self, now: float) -> None:
        """Evict what has waited too long even when no new records arrive (call now and then)."""
        self._count_evictions(self.correlator.expire(now))
        self._seen.expire(now)

    def _is_duplicate(self, record: SmsOperational | Usage, now: float, stamp: float | None) -> bool:
        """`stamp` is `record.time.timestamp()` (SMS records). The key holds the time as (stamp,
        microsecond) rather than the datetime, whose first hash costs ~1 µs: equal times give equal
        pairs, and two different times never do (two instants whose float stamps coincide are less
        than a second apart, so their microseconds differ)."""
        if type(record) is SmsOperational:
            if record.message_id is None:
                return False
            time = record.time
            key = hash((record.operation_name, record.message_id, stamp, None if time is None else time.microsecond,
                        record.result_type, record.result_signature, record.delivery_attempts))
        else:
            if record.record_id is None:
                return False
            key = hash((USAGE, record.record_id, record.usage_type, record.quantity))
        return not self._seen.add(key, None, now)

    def _sms(self, record: SmsOperational, now: float, stamp: float | None) -> None:
        """`stamp` is `record.time.timestamp()`, None when the record has no usable time."""
        m = self.metrics
        result_type = record.result_type
        raw = (record.operation_name, result_type, record.number_type, record.country)
        labels = self._sms_labels.get(raw)
        if labels is None:
            labels = (self._operation(raw[0]), self._result(result_type), self._number_type(raw[2]), country(raw[3]))
            if len(self._sms_labels) >= LABEL_MEMO_SIZE:
                self._sms_labels.clear()
            self._sms_labels[raw] = labels
        operation, result, number_type, where = labels
        operations = m.operations.values
        operations[labels] = operations.get(labels, 0.0) + 1.0
        if result_type is not None and result != SUCCEEDED:
            signature = self._result_signature(record.result_signature)
            m.failures.inc((operation, signature, number_type, where))
        if record.duration_ms is not None:
            m.api_duration.observe((operation,), record.duration_ms / 1000.0)
        if record.outgoing_message_length:
            m.message_characters.inc(("outgoing",), record.outgoing_message_length)
        if record.incoming_message_length:
            m.message_characters.inc(("incoming",), record.incoming_message_length)

        if stamp is not None:
            m.record_age.observe((SMS_OPERATIONAL,), max(0.0, now - stamp))
        if operation == DELIVERY_REPORT:
            if record.delivery_attempts is not None:
                m.delivery_attempts.observe((result,), record.delivery_attempts)
            if record.message_id is None or stamp is None:
                m.unmatched_reports.inc((result,))
                return
            match, evicted = self.correlator.report(record.message_id, stamp, result, number_type, now)
        elif operation == SENT and result == SUCCEEDED and record.message_id is not None and stamp is not None:
            match, evicted = self.correlator.sent(record.message_id, stamp, number_type, now)
        else:
            return
        if match is not None:
            m.delivery_latency.observe((match.result, match.number_type), match.latency)
        if evicted:
            self._count_evictions(evicted)

    def _count_evictions(self, evicted: list[tuple[str, Waiting]]) -> None:
        m = self.metrics
        for reason, waiting in evicted:
            m.correlation_evictions.inc((waiting.side, reason))
            if waiting.side == "delivery_report":
                m.unmatched_reports.inc((waiting.result,))

    def _usage(self, record: Usage, now: float) -> None:
        m = self.metrics
        raw = (record.usage_type, record.unit_type)
        key = self._usage_labels.get(raw)
        if key is None:
            key = (self._usage_type(raw[0]), self._unit_type(raw[1]))
            if len(self._usage_labels) >= LABEL_MEMO_SIZE:
                self._usage_labels.clear()
            self._usage_labels[raw] = key
        usage_records = m.usage_records.values
        usage_records[key] = usage_records.get(key, 0.0) + 1.0
        usage_quantity = m.usage_quantity.values
        usage_quantity[key] = usage_quantity.get(key, 0.0) + record.quantity
        time = record.time
        if time is not None:
            m.record_age.observe((USAGE,), max(0.0, now - time.timestamp()))
