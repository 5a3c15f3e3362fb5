"""One event body → metric updates: decode → typed records → duplicates → correlation → metrics.

Every body ends in the same typed records (`consumer.records.CanonicalRecord`): a body in the exact
shape Azure Monitor writes through the canonical decoder, any other through the general decoder
(`decode_body`, then `convert` per record). Before the apply loop each record is bound to its label
series (`_SmsSeries`, `_UsageSeries`: the bound metric children of its labels, kept in a label memo);
a canonical record whose values only the general decoder may interpret (a null spelling, padding) is
converted by it there. The loop (`Pipeline._apply`) then has one step per category, each rule below
written once.

`Pipeline.process` is the only entry point, shared by `run` (live Event Hubs) and `replay` (files),
so both make exactly the same metrics of the same bytes. It is synchronous and does no I/O and no
logging: the caller passes the processing time and gets back a `BodyResult` that says what happened
(with reasons for what was rejected), which the shell logs with the partition and sequence number.

Which records count where:
- every SMSOperational record counts in `acs_sms_operations_total`; those whose ResultType is present
  and not `Succeeded` also in `acs_sms_failures_total`;
- a successful send and a delivery report with the same MessageId make one latency observation
  (`source="paired"`); a report whose send is not waiting takes the send time from its MessageId
  when it carries one (`source="message_id"`, `pipeline.latency_from_message_id`); a report that
  cannot be matched either way (no MessageId, no usable time, or its send never seen within the
  window) counts in `acs_sms_delivery_reports_unmatched_total`;
- a record identical in category, operation, id (MessageId / RecordId), time and result to one seen
  within the duplicate window is a `duplicate` and adds nothing else: Azure Monitor delivers
  resource logs at least once;
- a record without a usable time still counts, but adds nothing to age or latency histograms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer.correlation import DeliveryCorrelator, ExpiringMap, Waiting
from consumer.decode import DecodeError, decode_body
from consumer.labels import (
    CATEGORIES,
    DELIVERY_REPORT,
    NUMBER_TYPES,
    OTHER,
    RESULTS,
    SENT,
    SMS_OPERATIONAL,
    SMS_OPERATIONS,
    SUCCEEDED,
    UNIT_TYPES,
    USAGE,
    USAGE_TYPES,
    BoundedMemo,
    FirstSeen,
    KnownValues,
    Names,
    Resources,
    ResultSignatures,
    Senders,
    country,
)
from consumer.metrics import CounterChild, DomainMetrics, HistogramChild
from consumer.records import (
    CATEGORY_SPELLINGS,
    NO_PROPERTIES,
    NULL_SPELLINGS,
    CanonicalRecord,
    Invalid,
    Skipped,
    convert,
    decode_canonical,
    plain,
    time_stamp,
)
from consumer.settings import PipelineSettings

#: How many invalid-record reasons a BodyResult keeps for the logs (the count is always exact).
MAX_REASONS = 5

_SENT, _REPORT = "sent", "delivery_report"  # the sides of `DeliveryCorrelator.arrive`


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


class _Bound:
    """Metric children of one label combination, each bound on its first use: a slot stays unset
    until then (`__getattr__` runs only for an unset slot), so that a series is created when it is
    first updated, as `FastCounter.labels` would be called there, and an update is one call or one
    attribute operation."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        child = self._bind(name)
        setattr(self, name, child)
        return child

    def _bind(self, name: str) -> Any:
        raise AttributeError(name)


class _Categories(_Bound):
    """The children every record of a category updates (`acs_consumer_records`, record age), the
    message-length counters and the event age."""

    __slots__ = ("_metrics", "sms_processed", "sms_duplicate", "sms_age", "usage_processed", "usage_duplicate",
                 "usage_age", "outgoing", "incoming", "event_age")

    def __init__(self, metrics: DomainMetrics) -> None:
        self._metrics = metrics

    def _bind(self, name: str) -> CounterChild | HistogramChild:
        m = self._metrics
        if name == "event_age":
            return m.event_age.labels()
        group, _, what = name.partition("_")
        if group in ("outgoing", "incoming"):
            return m.message_characters.labels(direction=group)
        category = SMS_OPERATIONAL if group == "sms" else USAGE
        if what == "age":
            return m.record_age.labels(category=category)
        return m.records.labels(category=category, outcome="processed" if what == "processed" else "duplicate")


class _SmsSeries(_Bound):
    """The bounded labels of one raw (operationName, resultType, resultSignature, NumberType, Country,
    resourceId), the clean result type and signature, and the children of the families they label."""

    __slots__ = ("_metrics", "_signature_label", "operation", "result", "number_type", "country", "resource",
                 "result_type", "signature", "correlates", "operations", "failures", "api_duration",
                 "delivery_attempts", "unmatched_reports")

    def __init__(self, metrics: DomainMetrics, result_type: str | None, signature: str | None,
                 signature_label: Callable[[str | None], str], *, operation: str, result: str, number_type: str,
                 country: str, resource: str) -> None:
        self._metrics, self._signature_label = metrics, signature_label
        self.operation, self.result, self.number_type, self.country = operation, result, number_type, country
        self.resource = resource
        self.result_type, self.signature = result_type, signature
        self.correlates = self.operation in (DELIVERY_REPORT, SENT)  # see `Pipeline._correlate`

    def _bind(self, name: str) -> CounterChild | HistogramChild:
        m = self._metrics
        if name == "operations":
            return m.operations.labels(operation=self.operation, result=self.result, number_type=self.number_type,
                                       country=self.country, resource=self.resource)
        if name == "failures":
            return m.failures.labels(operation=self.operation, result_signature=self._signature_label(self.signature),
                                     number_type=self.number_type, country=self.country, resource=self.resource)
        if name == "api_duration":
            return m.api_duration.labels(operation=self.operation)
        if name == "delivery_attempts":
            return m.delivery_attempts.labels(result=self.result)
        if name == "unmatched_reports":
            return m.unmatched_reports.labels(result=self.result, resource=self.resource)
        raise AttributeError(name)


class _UsageSeries(_Bound):
    """One raw (UsageType, UnitType, resourceId), its bounded labels and the children they label. The
    labels are worked out on first use, when a record of it is counted (not for a duplicate), so that
    first-seen label values are admitted in the order records are counted."""

    __slots__ = ("_metrics", "_raw", "_resolve", "labels", "usage_records", "usage_quantity")

    def __init__(self, metrics: DomainMetrics, raw: tuple[str | None, ...],
                 resolve: Callable[[tuple[str | None, ...]], dict[str, str]]) -> None:
        self._metrics, self._raw, self._resolve = metrics, raw, resolve

    def _bind(self, name: str) -> dict[str, str] | CounterChild:
        if name == "labels":
            return self._resolve(self._raw)
        family = self._metrics.usage_records if name == "usage_records" else self._metrics.usage_quantity
        return family.labels(**self.labels)


_Series = _SmsSeries | _UsageSeries | None  # None: a record with no series (skipped or invalid)
#: The raw values an SMS series is of: (operationName, resultType, resultSignature, NumberType, Country, resourceId).
_SmsKey = tuple[str, str | None, int | str | None, str | None, str | None, str | None]


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
        # The values ACS documents are their own label value on every replica (no first-N slot).
        self._usage_type = Names(limits.usage_types, missing=OTHER, known=USAGE_TYPES)
        self._unit_type = Names(limits.unit_types, missing=OTHER, known=UNIT_TYPES)
        self._category = Names(limits.categories, known=CATEGORIES)
        self._resource = Resources(limits.resources_first_seen, limits.resources)
        self._senders = Senders(limits.senders)
        self._senders_listed = bool(self._senders)  # else no phone number is read
        self._partition = FirstSeen(1024)  # Event Hubs allows at most 1024 partitions
        metrics.limit_series(limits.series_per_family, limits.resources)
        # Label memos: raw values → their series. The labels are a pure function of the values
        # (`FirstSeen` never forgets or changes a value it has mapped), so memoising changes nothing.
        self._categories = _Categories(metrics)
        # raw values as the general decoder gives them → series; of the canonical decoder: None when
        # a value is not plain (then the general decoder converts the record)
        self._sms: BoundedMemo[_SmsKey, _SmsSeries] = BoundedMemo(self._resolve_sms)
        self._usage: BoundedMemo[tuple[str | None, ...], _UsageSeries] = BoundedMemo(self._resolve_usage)
        self._plain_sms: BoundedMemo[_SmsKey, _SmsSeries | None] = BoundedMemo(
            self._resolve_plain_sms)
        self._plain_usage: BoundedMemo[tuple[str | None, ...], _UsageSeries | None] = BoundedMemo(
            self._resolve_plain_usage)
        self._senders_of: BoundedMemo[tuple[_SmsSeries, str | None], CounterChild] = BoundedMemo(self._bind_sender)
        self._latency: BoundedMemo[tuple[str, ...], HistogramChild] = BoundedMemo(self._bind_latency)
        self._events: BoundedMemo[str, CounterChild] = BoundedMemo(self._bind_events)
        #: Whether bodies in the canonical shape take the canonical decoder (`decode_canonical`); False
        #: sends every body through the general decoder (`convert`), for the decoder-equality tests.
        self.canonical = True
        self.correlator = DeliveryCorrelator(settings.correlation_max_entries, settings.correlation_max_age_seconds,
                                             settings.latency_from_message_id)
        self._seen: ExpiringMap[int, None] = ExpiringMap(settings.duplicates_max_entries,
                                                         settings.duplicates_max_age_seconds)
        metrics.collector.gauge(
            "acs_sms_correlation_pending",
            "Records waiting in the correlation window for their delivery partner, by side.",
            ("side",),
            lambda: [((side,), float(n)) for side, n in self.correlator.pending().items()],
        )

    def process(self, body: bytes, now: float, context: EventContext | None = None) -> BodyResult:
        """Decode one body and reflect every record in the metrics. Never raises on bad input."""
        if context is not None:
            self._count_event(context, now)
        if self.canonical and len(body) <= self.settings.max_body_bytes:
            records = decode_canonical(body)
            if records:  # an empty records array is a decode error: the general decoder says so
                result = BodyResult(records=len(records))
                self._apply(*self._bind(records, body), now, result)
                return result
        decoded = decode_body(body, self.settings.max_body_bytes)
        result = BodyResult(records=len(decoded.records), repaired=decoded.repaired)
        if decoded.error is not None:
            self.metrics.decode_errors.labels(reason=decoded.error.value).inc()
            result.decode_error = decoded.error
            result.detail = decoded.detail
            return result
        if decoded.repaired:
            self.metrics.repaired_bodies.labels().inc()
        self._apply(*self._bind_converted([convert(raw) for raw in decoded.records]), now, result)
        return result

    def _count_event(self, context: EventContext, now: float) -> None:
        self._events[context.partition].value += 1.0
        if context.enqueued_time is not None:
            self._categories.event_age.observe(max(0.0, now - context.enqueued_time))

    # --- binding: every record to its series, before the loop ------------------------------------

    def _bind(self, records: list[Any], body: bytes) -> tuple[list[CanonicalRecord | Skipped], list[_Series]]:
        """The canonical decoder's records of `body` (changed in place) and their series. A record whose
        values are not plain (`plain`) or whose category is spelled otherwise is replaced by the
        general decoder's conversion of it (from `body`: orjson accepts every body msgspec accepts with
        these types, with the same values); a category this service does not parse, spelled as it is,
        becomes `Skipped`."""
        series = self._plain_series(records)
        if None not in series:
            return records, series
        general: list[Any] | None = None
        for index, bound in enumerate(series):
            if bound is not None:
                continue
            record = records[index]
            if _unparsed(record.category):
                records[index] = Skipped(record.category)
                continue
            if general is None:
                general = decode_body(body, self.settings.max_body_bytes).records
            records[index] = record = convert(general[index])
            series[index] = self._series(record)
        return records, series

    def _bind_converted(self, outcomes: list[Any]) -> tuple[list[Any], list[_Series]]:
        """The general decoder's outcomes and their series."""
        return outcomes, [self._series(outcome) for outcome in outcomes]

    def _plain_series(self, records: list[CanonicalRecord]) -> list[_Series]:
        """The series of each record of the canonical decoder whose values are plain, else None.

        The last two distinct resourceIds of the body are kept: an equal one is replaced by that
        object, whose hash is cached, so that the memo lookup does not hash a fresh ~150-character id
        per record (an equality test is ~15 ns, a hash ~90 ns); a body holds one or two resources'."""
        series: list[_Series] = []
        append = series.append
        plain_sms, plain_usage, senders_listed = self._plain_sms, self._plain_usage, self._senders_listed
        recent_a = recent_b = None
        for record in records:
            resource_id = record.resourceId
            if resource_id is not None:
                if resource_id == recent_a:
                    resource_id = recent_a
                elif resource_id == recent_b:
                    resource_id = recent_b
                else:
                    recent_a, recent_b = resource_id, recent_a
            category = record.category
            properties = record.properties or NO_PROPERTIES
            if category == SMS_OPERATIONAL:
                sms = plain_sms[(record.operationName, record.resultType, record.resultSignature,
                                 properties.NumberType, properties.Country, resource_id)]
                append(None if (sms is None or not plain(properties.MessageId)
                                or (senders_listed and not plain(properties.PhoneNumber))) else sms)
            elif category == USAGE:
                usage = plain_usage[(properties.UsageType, properties.UnitType, resource_id)]
                append(None if (usage is None or properties.Quantity is None
                                or record.operationName in NULL_SPELLINGS or not plain(properties.RecordId))
                       else usage)
            else:
                append(None)
        return series

    def _series(self, outcome: CanonicalRecord | Skipped | Invalid) -> _Series:
        """The series of a record of the general decoder (its values final), None for no record."""
        if type(outcome) is not CanonicalRecord:
            return None
        properties = outcome.properties or NO_PROPERTIES
        if outcome.category == SMS_OPERATIONAL:
            return self._sms[(outcome.operationName, outcome.resultType, outcome.resultSignature,
                              properties.NumberType, properties.Country, outcome.resourceId)]
        return self._usage[(properties.UsageType, properties.UnitType, outcome.resourceId)]

    def _resolve_sms(self, raw: _SmsKey) -> _SmsSeries:
        """The series of raw (operationName, resultType, resultSignature, NumberType, Country, resourceId);
        an int resultSignature is taken as its text, as the general decoder gives it."""
        operation, result_type, signature, number_type, where, resource_id = raw
        return _SmsSeries(self.metrics, result_type, None if signature is None else str(signature),
                          self._result_signature, operation=self._operation(operation),
                          result=self._result(result_type), number_type=self._number_type(number_type),
                          country=country(where), resource=self._resource(resource_id))

    def _resolve_usage(self, raw: tuple[str | None, ...]) -> _UsageSeries:
        """The series of raw (UsageType, UnitType, resourceId)."""
        return _UsageSeries(self.metrics, raw, self._usage_labels)

    def _usage_labels(self, raw: tuple[str | None, ...]) -> dict[str, str]:
        usage_type, unit_type, resource_id = raw
        return {"usage_type": self._usage_type(usage_type), "unit_type": self._unit_type(unit_type),
                "resource": self._resource(resource_id)}

    def _resolve_plain_sms(self, raw: _SmsKey) -> _SmsSeries | None:
        """The series of raw values of the canonical decoder, None when one is not plain (an int is)."""
        return self._resolve_sms(raw) if all(isinstance(value, int) or plain(value) for value in raw) else None

    def _resolve_plain_usage(self, raw: tuple[str | None, ...]) -> _UsageSeries | None:
        return self._usage[raw] if all(map(plain, raw)) else None

    def _bind_sender(self, key: tuple[_SmsSeries, str | None]) -> CounterChild:
        sms, phone = key
        return self.metrics.sender_operations.labels(operation=sms.operation, result=sms.result,
                                                     resource=sms.resource, sender=self._senders(phone))

    def _bind_events(self, partition: str) -> CounterChild:
        return self.metrics.events.labels(partition=self._partition(partition))

    def _bind_latency(self, key: tuple[str, ...]) -> HistogramChild:
        result, number_type, source, resource = key  # `DeliveryCorrelator.arrive`'s match key
        return self.metrics.delivery_latency.labels(result=result, number_type=number_type, source=source,
                                                    resource=resource)

    # --- the apply loop: one step per category, one per family group --------------------------------

    def _apply(self, records: Sequence[CanonicalRecord | Skipped | Invalid], series: list[_Series], now: float,
               result: BodyResult) -> None:
        """Reflect bound records in the metrics and in `result`, in order: every record that is not a
        duplicate, invalid or skipped is processed."""
        apply_sms, apply_usage = self._apply_sms, self._apply_usage
        settled = result.duplicate + result.invalid + result.skipped
        for record, bound in zip(records, series, strict=True):
            if type(bound) is _SmsSeries:
                apply_sms(record, bound, now, result)  # type: ignore[arg-type]  # a bound record is typed
            elif bound is not None:
                apply_usage(record, bound, now, result)  # type: ignore[arg-type]  # a bound record is typed
            else:
                self._reject(record, result)  # type: ignore[arg-type]  # an unbound one is not
        result.processed += len(records) - (result.duplicate + result.invalid + result.skipped - settled)

    def _apply_sms(self, record: CanonicalRecord, sms: _SmsSeries, now: float, result: BodyResult) -> None:
        """An SMSOperational record: duplicates and age (`_admit`); operations, sender, failures, API
        duration, message lengths; delivery correlation (`_correlate`).

        Its duplicate key holds the time as (stamp, microsecond): equal for equal times and different
        for different ones (two instants whose float stamps coincide are less than a second apart, so
        their microseconds differ)."""
        properties = record.properties or NO_PROPERTIES
        stamp, microsecond = time_stamp(record.time)
        message_id = properties.MessageId
        key = None if message_id is None else hash((record.operationName, message_id, stamp, microsecond,
                                                    sms.result_type, sms.signature, properties.DeliveryAttempts))
        if not self._admit(key, stamp, now, result, SMS_OPERATIONAL):
            return
        sms.operations.value += 1.0
        if self._senders_listed:
            self._senders_of[(sms, properties.PhoneNumber)].inc()
        if sms.result_type is not None and sms.result != SUCCEEDED:
            sms.failures.value += 1.0
        duration = record.durationMs
        if duration is not None:
            sms.api_duration.observe(duration / 1000.0)
        length = properties.OutgoingMessageLength
        if length:
            self._categories.outgoing.value += length
        length = properties.IncomingMessageLength
        if length:
            self._categories.incoming.value += length
        if sms.correlates:
            self._correlate(properties, sms, message_id, stamp, now)
        self._categories.sms_processed.value += 1.0

    def _apply_usage(self, record: CanonicalRecord, usage: _UsageSeries, now: float, result: BodyResult) -> None:
        """A Usage record: duplicates, age, counts."""
        properties = record.properties or NO_PROPERTIES
        stamp, _ = time_stamp(record.time)
        record_id, quantity = properties.RecordId, properties.Quantity
        key = None if record_id is None else hash((USAGE, record_id, properties.UsageType, quantity))
        if not self._admit(key, stamp, now, result, USAGE):
            return
        usage.usage_records.value += 1.0
        usage.usage_quantity.value += quantity
        self._categories.usage_processed.value += 1.0

    def _admit(self, key: int | None, stamp: float | None, now: float, result: BodyResult, category: str) -> bool:
        """Whether a record of `category` with duplicate key `key` (None: no key) is not a duplicate
        within the window; a duplicate is counted, an admitted record's age (time `stamp`) observed:
        processing time minus record time, at least 0 (-0.0 and NaN included)."""
        categories = self._categories
        if key is not None and not self._seen.add(key, None, now):
            (categories.sms_duplicate if category is SMS_OPERATIONAL else categories.usage_duplicate).value += 1.0
            result.duplicate += 1
            return False
        if stamp is not None:
            age = now - stamp
            (categories.sms_age if category is SMS_OPERATIONAL else categories.usage_age).observe(
                age if age > 0.0 else 0.0)
        return True

    def _correlate(self, properties: Any, sms: _SmsSeries, message_id: str | None, stamp: float | None,
                   now: float) -> None:
        """Delivery latency: a report meets its send (either order) or takes its send time from its
        MessageId (`DeliveryCorrelator.arrive`); delivery attempts of a report."""
        if sms.operation == DELIVERY_REPORT:
            attempts = properties.DeliveryAttempts
            if attempts is not None:
                sms.delivery_attempts.observe(attempts)
            if message_id is None or stamp is None:
                sms.unmatched_reports.inc()
                return
            match, evicted = self.correlator.arrive(message_id, _REPORT, stamp, sms.result, sms.number_type, now,
                                                    sms.resource)
        elif sms.result == SUCCEEDED and message_id is not None and stamp is not None:
            match, evicted = self.correlator.arrive(message_id, _SENT, stamp, "", sms.number_type, now, sms.resource)
        else:
            return
        if match is not None:
            latency, key = match
            self._latency[key].observe(latency)
        if evicted:
            self._count_evictions(evicted)

    def _skip(self, category: str, result: BodyResult) -> None:
        self.metrics.records.labels(category=self._category(category), outcome="skipped").inc()
        result.skipped += 1

    def _reject(self, outcome: Skipped | Invalid, result: BodyResult) -> None:
        """Count a record that has no series."""
        if isinstance(outcome, Skipped):
            self._skip(outcome.category, result)
            return
        self.metrics.records.labels(category=self._category(outcome.category), outcome="invalid").inc()
        result.invalid += 1
        if len(result.invalid_reasons) < MAX_REASONS:
            result.invalid_reasons.append(outcome.reason)

    def expire(self, now: float, limit: int | None = None) -> bool:
        """Evict what has waited too long even when no new records arrive (call now and then); at most
        `limit` entries of each window per call. True when a window may hold more to evict."""
        evicted = self.correlator.expire(now, limit)
        self._count_evictions(evicted)
        seen = self._seen.expire(now, limit)
        return limit is not None and (len(evicted) >= limit or len(seen) >= limit)

    def _count_evictions(self, evicted: Sequence[tuple[str, Waiting]]) -> None:
        m = self.metrics
        for reason, waiting in evicted:
            m.correlation_evictions.labels(side=waiting.side, reason=reason).inc()
            if waiting.side == "delivery_report":
                m.unmatched_reports.labels(result=waiting.result, resource=waiting.resource).inc()


def _unparsed(category: str) -> bool:
    """Whether `category` names a category this service does not parse, spelled as it is."""
    return plain(category) and category.lower() not in CATEGORY_SPELLINGS
