"""One event body → metric updates: decode → typed records → duplicates → correlation → metrics.

Every body ends in the same typed records (`consumer.records.CanonicalRecord`): a body in the exact
shape Azure Monitor writes through the canonical decoder, any other through the general decoder
(`decode_body`, then `convert` per record); and every typed record passes through one apply loop,
`Pipeline._apply`, where each rule below is written once.

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

from bisect import bisect_left as _bisect_left
from dataclasses import dataclass, field
from typing import Any

from consumer.config import PipelineSettings
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
    FirstSeen,
    KnownValues,
    Names,
    Resources,
    ResultSignatures,
    Senders,
    country,
)
from consumer.metrics import DomainMetrics
from consumer.records import (
    NO_PROPERTIES,
    UNUSUAL,
    CanonicalRecord,
    Invalid,
    Skipped,
    _CATEGORIES,
    _NULLS,
    clean,
    convert,
    decode_canonical,
    time_stamp,
)

#: How many invalid-record reasons a BodyResult keeps for the logs (the count is always exact).
MAX_REASONS = 5

#: How many distinct raw (operation, result type, number type, country, resource id) tuples keep their bounded
#: label tuple memoised; when full the memo is emptied, so hostile input cannot grow it.
LABEL_MEMO_SIZE = 4096
#: Raw values longer than this, or not ASCII, are never memo keys (their labels are worked out every
#: time, with the same result: no label value is longer than `labels.MAX_LABEL_LENGTH`, and Azure's
#: values are ASCII). Not ASCII, because a str holds up to 4 bytes a character (one emoji makes it
#: UCS-4): only so does a memo hold at most LABEL_MEMO_SIZE × (5 × 256) bytes of values (~5 MB for
#: the largest) whatever the input, not 4× that.
MAX_MEMO_KEY_LENGTH = 256


def _memoisable_value(value: str) -> bool:
    """Whether `value` may be (part of) a memo key: ASCII (O(1): CPython keeps the flag) and short."""
    return len(value) <= MAX_MEMO_KEY_LENGTH and value.isascii()


def _memoisable(raw: tuple[object, ...]) -> bool:
    """Whether every string of `raw` may be part of a memo key (`_memoisable_value`)."""
    for value in raw:
        if type(value) is str and not _memoisable_value(value):
            return False
    return True

_SMS_PROCESSED, _SMS_DUPLICATE = (SMS_OPERATIONAL, "processed"), (SMS_OPERATIONAL, "duplicate")
_USAGE_PROCESSED, _USAGE_DUPLICATE = (USAGE, "processed"), (USAGE, "duplicate")
_OUTGOING, _INCOMING = ("outgoing",), ("incoming",)
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
        self._partition = FirstSeen(1024)  # Event Hubs allows at most 1024 partitions
        metrics.limit_series(limits.series_per_family, limits.resources)
        # raw (usage_type, unit_type, resourceId) → bounded labels; `FirstSeen` never forgets or changes a value it
        # has mapped (admitted stays admitted, refused stays refused), so memoising it changes nothing
        self._usage_labels: dict[tuple[str | None, str | None, str | None], tuple[str, str, str]] = {}
        # raw (operationName, resultType, NumberType, Country) → (labels of acs_sms_operations, clean result
        # type), or None when a value needs the general decoder: of the canonical decoder's records and of
        # the general decoder's (final values), see `_resolve_sms`. The labels are a pure function of the
        # values (`FirstSeen` never forgets or changes a value it has mapped), so memoising changes nothing.
        self._canonical_sms: dict[tuple[str | None, ...], tuple[tuple[str, str, str, str, str], str | None] | None] = {}
        self._final_sms: dict[tuple[str | None, ...], tuple[tuple[str, str, str, str, str], str | None] | None] = {}
        self._signatures: dict[int | str | None, str | None] = {}  # raw resultSignature → clean (or UNUSUAL)
        #: Whether bodies in the canonical shape take the canonical decoder (`decode_canonical`); False
        #: sends every body through the general decoder (`convert`), for the decoder-equality tests.
        self.canonical = True
        self.correlator = DeliveryCorrelator(settings.correlation_max_entries, settings.correlation_max_age_seconds,
                                             settings.latency_from_message_id)
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

        if self.canonical and len(body) <= self.settings.max_body_bytes:
            records = decode_canonical(body)
            if records:  # an empty records array is a decode error: the general decoder says so
                result = BodyResult(records=len(records))
                self._apply(records, now, result, body)
                return result

        decoded = decode_body(body, self.settings.max_body_bytes)
        result = BodyResult(records=len(decoded.records), repaired=decoded.repaired)
        if decoded.error is not None:
            m.decode_errors.inc((decoded.error.value,))
            result.decode_error = decoded.error
            result.detail = decoded.detail
            return result
        if decoded.repaired:
            m.repaired_bodies.inc(())
        run: list[CanonicalRecord] = []  # converted records not applied yet (applied in order)
        for raw in decoded.records:
            outcome = convert(raw)
            if type(outcome) is CanonicalRecord:
                run.append(outcome)
                continue
            if run:
                self._apply(run, now, result, None)
                run = []
            self._reject(outcome, result)  # type: ignore[arg-type]
        if run:
            self._apply(run, now, result, None)
        return result

    def _apply(self, records: list[CanonicalRecord], now: float, result: BodyResult, body: bytes | None) -> None:
        """Reflect typed records in the metrics and in `result`: the one apply loop of every record.

        `body` is the body the records were decoded from by the canonical decoder (`decode_canonical`),
        None for records of the general decoder (`convert`), whose values are final. The canonical
        decoder's values are checked here, inline (the hot path): a record with a value only the general
        decoder may interpret (a null spelling, padding: see `clean`; a category spelled otherwise) is
        converted by it from the body (orjson accepts every body msgspec accepts with these types, with
        the same values) and applied in its place in the order.

        The record time (`time_stamp`) and the duplicate window (`ExpiringMap.add`) are called, not
        copied: each tests its common case first. The metric updates are inlined copies of the fast
        path of `FastCounter.inc` and `FastHistogram.observe` (why: the comment below)."""
        m = self.metrics
        final = body is None
        # The updates a record makes in the metric families are the first lines of `FastCounter.inc`
        # and `FastHistogram.observe` (their fast path: a present series updated in place), inlined:
        # a call costs as much as the update, ~1% of bench_pipeline (b) for each update a record makes
        # (callgrind, instructions per record: +2.9% with every counter update through `inc`, +2.5%
        # with every histogram update through `observe`). A new series takes the method itself (which
        # applies the family's series budget); so does an update few records make (a duplicate).
        counts = m.records.values
        operations = m.operations.values
        usage_records, usage_quantity = m.usage_records.values, m.usage_quantity.values
        api_duration = m.api_duration.observe
        characters = m.message_characters.values
        record_age = m.record_age.observe
        first_seen = self._seen.add
        api_children, api_bounds = m.api_duration.children, m.api_duration.bounds
        age_children, age_bounds = m.record_age.children, m.record_age.bounds
        memo = self._final_sms if final else self._canonical_sms
        signatures = self._signatures
        general: list[Any] | None = None
        sms_age, usage_age = (SMS_OPERATIONAL,), (USAGE,)
        attempts_children, attempts_bounds = m.delivery_attempts.children, m.delivery_attempts.bounds
        latency_children, latency_bounds = m.delivery_latency.children, m.delivery_latency.bounds
        arrive = self.correlator.arrive
        senders = self._senders if self._senders else None
        # The last two distinct resourceIds: a record's equal one is replaced by that object, whose hash
        # is cached, so that the memo lookups below do not hash a fresh ~150-character id per record
        # (an equality test is ~15 ns, a hash ~90 ns); a body holds one or two resources' records.
        resource_a = resource_b = None
        for index, record in enumerate(records):
            category = record.category
            properties = record.properties or NO_PROPERTIES
            resource_id = record.resourceId
            if resource_id is not None:
                if resource_id == resource_a:
                    resource_id = resource_a
                elif resource_id == resource_b:
                    resource_id = resource_b
                else:
                    resource_a, resource_b = resource_id, resource_a
            if category == SMS_OPERATIONAL:
                sms = True
                raw = (record.operationName, record.resultType, properties.NumberType, properties.Country,
                       resource_id)
                resolved = memo.get(raw, False)
                if resolved is False:
                    resolved = self._resolve_sms(raw, final)
                signature = record.resultSignature
                message_id = properties.MessageId
                if not final:
                    signature = signatures.get(signature, UNUSUAL) if signature is not None else None
                    if signature is UNUSUAL:
                        signature = self._resolve_signature(record.resultSignature)
                    if message_id is not None and (message_id in _NULLS or message_id.strip() is not message_id):
                        message_id = clean(message_id)
                    if resolved is None or signature is UNUSUAL or message_id is UNUSUAL:
                        if general is None:
                            general = decode_body(body, self.settings.max_body_bytes).records  # type: ignore[arg-type]
                        self._convert_and_apply(general[index], now, result)
                        continue
                labels, result_type = resolved  # type: ignore[misc]
                duplicate, processed, age_key = _SMS_DUPLICATE, _SMS_PROCESSED, sms_age
            elif category == USAGE:
                sms = False
                quantity = properties.Quantity
                record_id = properties.RecordId
                usage_type = properties.UsageType
                unit_type = properties.UnitType
                if not final:  # `clean` of each, inlined for the plain value (itself)
                    if record_id is not None and (record_id in _NULLS or record_id.strip() is not record_id):
                        record_id = clean(record_id)
                    if usage_type is not None and (usage_type in _NULLS or usage_type.strip() is not usage_type):
                        usage_type = clean(usage_type)
                    if unit_type is not None and (unit_type in _NULLS or unit_type.strip() is not unit_type):
                        unit_type = clean(unit_type)
                    if resource_id is not None and (resource_id in _NULLS or resource_id.strip() is not resource_id):
                        resource_id = clean(resource_id)
                    if (quantity is None or record.operationName in _NULLS or record_id is UNUSUAL
                            or usage_type is UNUSUAL or unit_type is UNUSUAL or resource_id is UNUSUAL):
                        if general is None:
                            general = decode_body(body, self.settings.max_body_bytes).records  # type: ignore[arg-type]
                        self._convert_and_apply(general[index], now, result)
                        continue
                duplicate, processed, age_key = _USAGE_DUPLICATE, _USAGE_PROCESSED, usage_age
            elif category not in _NULLS and category.strip() is category and category.lower() not in _CATEGORIES:
                self._skip(category, result)  # a category this service does not parse, spelled plainly
                continue
            else:
                if general is None:
                    general = decode_body(body, self.settings.max_body_bytes).records  # type: ignore[arg-type]
                self._convert_and_apply(general[index], now, result)
                continue

            stamp, microsecond = time_stamp(record.time)

            # Duplicates. An SMS key holds the time as (stamp, microsecond): equal for equal times and
            # different for different ones (two instants whose float stamps coincide are less than a
            # second apart, so their microseconds differ).
            if sms:
                attempts = properties.DeliveryAttempts
                key = None if message_id is None else hash(
                    (raw[0], message_id, stamp, microsecond, result_type, signature, attempts))
            else:
                key = None if record_id is None else hash((USAGE, record_id, usage_type, quantity))
            if key is not None and not first_seen(key, None, now):
                m.records.inc(duplicate, 1.0)
                result.duplicate += 1
                continue

            if stamp is not None:
                age = now - stamp
                if not age > 0.0:  # as max(0.0, age): -0.0 and NaN included
                    age = 0.0
                child = age_children.get(age_key)
                if child is None:
                    record_age(age_key, age)
                else:
                    child[_bisect_left(age_bounds, age)] += 1
                    child[-1] += age

            if sms:
                operation, result_label, number_type, where, resource = labels
                present = operations.get(labels)
                if present is None:  # a new series: `inc` applies the family's series budget
                    m.operations.inc(labels, 1.0)
                else:
                    operations[labels] = present + 1.0
                if senders is not None:  # only when the operator lists sender numbers: else no phone number is read
                    phone = properties.PhoneNumber
                    if not final and phone is not None:  # what the general decoder makes of it
                        phone = None if phone in _NULLS else phone.strip()
                    m.sender_operations.inc((operation, result_label, resource, senders(phone)))
                if result_type is not None and result_label != SUCCEEDED:
                    m.failures.inc((operation, self._result_signature(signature), number_type, where, resource))
                duration = record.durationMs
                if duration is not None:
                    seconds = duration / 1000.0
                    child = api_children.get((operation,))
                    if child is None:
                        api_duration((operation,), seconds)
                    else:
                        child[_bisect_left(api_bounds, seconds)] += 1
                        child[-1] += seconds
                length = properties.OutgoingMessageLength
                if length:
                    present = characters.get(_OUTGOING)
                    if present is None:  # a new series: `inc` applies the family's series budget
                        m.message_characters.inc(_OUTGOING, length)
                    else:
                        characters[_OUTGOING] = present + length
                length = properties.IncomingMessageLength
                if length:
                    present = characters.get(_INCOMING)
                    if present is None:  # a new series: `inc` applies the family's series budget
                        m.message_characters.inc(_INCOMING, length)
                    else:
                        characters[_INCOMING] = present + length
                # Delivery latency: a report meets its send (either order) or takes its send time from
                # its MessageId (`DeliveryCorrelator.arrive`).
                if operation == DELIVERY_REPORT:
                    if attempts is not None:
                        child = attempts_children.get((result_label,))
                        if child is None:
                            m.delivery_attempts.observe((result_label,), attempts)
                        else:
                            child[_bisect_left(attempts_bounds, attempts)] += 1
                            child[-1] += attempts
                    if message_id is None or stamp is None:
                        m.unmatched_reports.inc((result_label, resource))
                        match = evicted = None
                    else:
                        match, evicted = arrive(message_id, _REPORT, stamp, result_label, number_type, now, resource)
                elif operation == SENT and result_label == SUCCEEDED and message_id is not None and stamp is not None:
                    match, evicted = arrive(message_id, _SENT, stamp, "", number_type, now, resource)
                else:
                    match = evicted = None
                if match is not None:
                    latency, key = match
                    child = latency_children.get(key)
                    if child is None:
                        m.delivery_latency.observe(key, latency)
                    else:
                        child[_bisect_left(latency_bounds, latency)] += 1
                        child[-1] += latency
                if evicted:
                    self._count_evictions(evicted)
            else:
                raw_usage = (usage_type, unit_type, resource_id)
                key = self._usage_labels.get(raw_usage)
                if key is None:
                    key = self._resolve_usage(raw_usage)
                present = usage_records.get(key)
                if present is None:  # a new series: `inc` applies the family's series budget
                    m.usage_records.inc(key, 1.0)
                else:
                    usage_records[key] = present + 1.0
                present = usage_quantity.get(key)
                if present is None:  # a new series: `inc` applies the family's series budget
                    m.usage_quantity.inc(key, quantity)
                else:
                    usage_quantity[key] = present + quantity

            present = counts.get(processed)
            if present is None:  # a new series: `inc` applies the family's series budget
                m.records.inc(processed, 1.0)
            else:
                counts[processed] = present + 1.0
            result.processed += 1

    def _convert_and_apply(self, raw: Any, now: float, result: BodyResult) -> None:
        """One record of a canonical body that the general decoder must convert."""
        outcome = convert(raw)
        if type(outcome) is CanonicalRecord:
            self._apply([outcome], now, result, None)
        else:
            self._reject(outcome, result)  # type: ignore[arg-type]

    def _skip(self, category: str, result: BodyResult) -> None:
        self.metrics.records.inc((self._category(category), "skipped"))
        result.skipped += 1

    def _reject(self, outcome: Skipped | Invalid, result: BodyResult) -> None:
        """Count a record the general decoder gave no typed record for."""
        if type(outcome) is Skipped:
            self._skip(outcome.category, result)
            return
        self.metrics.records.inc((self._category(outcome.category), "invalid"))
        result.invalid += 1
        if len(result.invalid_reasons) < MAX_REASONS:
            result.invalid_reasons.append(outcome.reason)

    def _resolve_sms(
        self, raw: tuple[str | None, ...], final: bool
    ) -> tuple[tuple[str, str, str, str, str], str | None] | None:
        """The labels of acs_sms_operations of raw (operationName, resultType, NumberType, Country, resourceId) and
        the clean result type, memoised. `final`: values of the general decoder, as they are; else of
        the canonical decoder, cleaned (None when a value needs the general decoder, see `clean`)."""
        operation, result_type, number_type, where, resource_id = raw
        assert operation is not None
        if not final:
            if operation in _NULLS or operation.strip() is not operation:
                operation = None
            else:
                result_type, number_type, where = clean(result_type), clean(number_type), clean(where)
                resource_id = clean(resource_id)
                if UNUSUAL in (result_type, number_type, where, resource_id):
                    operation = None
        resolved = None if operation is None else (
            (self._operation(operation), self._result(result_type), self._number_type(number_type), country(where),
             self._resource(resource_id)),
            result_type)
        memo = self._final_sms if final else self._canonical_sms
        if _memoisable(raw):
            if len(memo) >= LABEL_MEMO_SIZE:
                memo.clear()
            memo[raw] = resolved
        return resolved

    def _resolve_usage(self, raw: tuple[str | None, str | None, str | None]) -> tuple[str, str, str]:
        """Fill `_usage_labels` for raw (usage type, unit type, resource id): their bounded labels."""
        key = (self._usage_type(raw[0]), self._unit_type(raw[1]), self._resource(raw[2]))
        if _memoisable(raw):
            if len(self._usage_labels) >= LABEL_MEMO_SIZE:
                self._usage_labels.clear()
            self._usage_labels[raw] = key
        return key

    def _resolve_signature(self, raw: int | str) -> str | None:
        """Fill `_signatures` for `raw`: what the model makes of it (a number becomes its text)."""
        value = str(raw) if type(raw) is int else clean(raw)
        if type(raw) is int or _memoisable_value(raw):
            if len(self._signatures) >= LABEL_MEMO_SIZE:
                self._signatures.clear()
            self._signatures[raw] = value
        return value

    def expire(self, now: float, limit: int | None = None) -> bool:
        """Evict what has waited too long even when no new records arrive (call now and then); at most
        `limit` entries of each window per call. True when a window may hold more to evict."""
        evicted = self.correlator.expire(now, limit)
        self._count_evictions(evicted)
        seen = self._seen.expire(now, limit)
        return limit is not None and (len(evicted) >= limit or len(seen) >= limit)

    def _count_evictions(self, evicted: list[tuple[str, Waiting]]) -> None:
        m = self.metrics
        for reason, waiting in evicted:
            m.correlation_evictions.inc((waiting.side, reason))
            if waiting.side == "delivery_report":
                m.unmatched_reports.inc((waiting.result, waiting.resource))
