"""Every metric family of the contract (README.md, "Metric reference"), on an explicit registry (no global state).

Two kinds of families live here:

- **Per-record families** (`acs_sms_*`, `acs_usage_*`, `acs_consumer_records_total`, ...) are updated
  several times for every record, on the hot path. prometheus_client's `labels(...).inc()` costs
  ~3.4 µs per update (label lookup under a lock) against ~0.13 µs for a dict update, and a record
  makes about five updates, so these families keep their state in plain dicts (`FastCounter`,
  `FastHistogram`) and a custom collector turns it into metric families at scrape time — the
  documented prometheus_client pattern for custom collectors. `Metrics.render` writes their text
  itself (same bytes, ~10× less CPU), and each family has a total series budget (label combinations;
  `pipeline.labels.series_per_family`): new combinations past it fold into its `other` series.
  They are updated from one thread at a time; a scrape copies under the GIL before iterating.
- **Per-event / per-batch families** of the shell (`acs_consumer_events_total`, checkpoints, lag,
  owned partitions, errors, build info) are ordinary prometheus_client objects.

Label values are never raw input: they come through `consumer.labels`, which bounds them.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from consumer.errors import KINDS as ERROR_KINDS
from consumer.labels import DOCUMENTED_SIGNATURES
from consumer.settings import Buckets, LabelLimits

LabelKey = tuple[str, ...]
_bisect_left = bisect.bisect_left

# `*_created` series double every counter's exposition and no dashboard or alert here uses them.
disable_created_metrics()


#: Labels whose values are open-ended (first-N admission; each value bounded, see `consumer.labels`, but
#: their combinations are not): past a family's series budget, a new combination has these `other`.
#: Every other label keeps its value, so that no alert loses what it selects on: the closed
#: vocabularies of the records (operation, result, number_type: known values or `other`) and the
#: labels the code itself chooses (outcome, side, reason, direction, source, partition, ...).
#: `resource` is open but keeps the names the operator lists (`pipeline.labels.resources`).
OPEN_LABELS = frozenset({"country", "result_signature", "usage_type", "unit_type", "category", "resource"})
RESOURCE_LABEL = "resource"
#: Open labels whose documented values survive a fold: a failure's code decides its failure class and
#: whether the delivery SLO counts it (docs/alerting.md), so a recipient's 4007 never becomes an `other`
#: that counts against the objective. A closed set (the codes ACS documents), so the budget stays bounded.
KEPT_AT_FOLD = {"result_signature": frozenset(DOCUMENTED_SIGNATURES)}
FOLDED = "other"

class _Budget:
    """What a family does with a new label combination once it has `budget` series: the combination
    is folded (its open labels `other`, but listed resources), and `folded` counts each of its updates."""

    __slots__ = ("budget", "labelnames", "keep", "folded", "family")

    def __init__(self, family: str, labelnames: Sequence[str]) -> None:
        self.family = (family,)
        self.budget: int = LabelLimits.model_fields["series_per_family"].default
        self.labelnames = tuple(labelnames)
        self.keep: tuple[frozenset[str] | None, ...] = ()
        self.keep_resources(())
        self.folded: FastCounter | None = None

    def keep_resources(self, resources: Iterable[str]) -> None:
        """Per label, the values a fold keeps: None = every value (closed labels), else the set kept
        (the listed resources for `resource`, the documented codes for `result_signature`, none for the
        other open labels)."""
        listed = frozenset(resources)
        self.keep = tuple(None if name not in OPEN_LABELS else listed if name == RESOURCE_LABEL
                          else KEPT_AT_FOLD.get(name, frozenset()) for name in self.labelnames)

    def full(self, series: int) -> bool:
        """Whether a family with `series` series folds a new combination."""
        return series >= self.budget

    def fold(self, key: LabelKey) -> LabelKey:
        """`key` with its open labels `other` (but kept values)."""
        return tuple(value if keep is None or value in keep else FOLDED
                     for keep, value in zip(self.keep, key, strict=True))

    def fold_counter(self) -> CounterChild | None:
        """The child that counts the updates of a folded combination, None while unset."""
        return None if self.folded is None else self.folded.child(self.family)


def key_of(labelnames: Sequence[str], values: dict[str, str]) -> LabelKey:
    """The label-value tuple of `values` (label name → value) in the order of `labelnames`; the names
    must be exactly `labelnames`, so that a value can never land under another label."""
    if values.keys() != set(labelnames):
        raise ValueError(f"labels {sorted(values)} do not match the family's label names {list(labelnames)}")
    return tuple(map(values.__getitem__, labelnames))


class CounterChild:
    """One series of a `FastCounter` (what `FastCounter.labels` returns): keep it, and update it with
    `inc(amount)` or, on hot paths, `value += amount` (the same update without a call)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _FoldedCounterChild(CounterChild):
    """A combination past the family's budget: its updates go to the folded series (`value` reads and
    writes that series'), each update counted in `folded`."""

    __slots__ = ("_target", "_folded")

    def __init__(self, target: CounterChild, folded: CounterChild | None) -> None:
        self._target, self._folded = target, folded

    @property  # a property over the slot: a folded child holds no value of its own
    def value(self) -> float:
        return self._target.value

    @value.setter
    def value(self, value: float) -> None:
        self._target.value = value
        if self._folded is not None:
            self._folded.value += 1.0


class HistogramChild:
    """One series of a `FastHistogram` (what `FastHistogram.labels` returns): per-bucket counts (last
    bucket `+Inf`) and the sum in `counts`; keep it and `observe` it."""

    __slots__ = ("counts", "bounds")

    def __init__(self, counts: list[float], bounds: tuple[float, ...]) -> None:
        self.counts, self.bounds = counts, bounds

    def observe(self, value: float) -> None:
        counts = self.counts
        counts[_bisect_left(self.bounds, value)] += 1
        counts[-1] += value


class _FoldedHistogramChild(HistogramChild):
    """A combination past the family's budget: its observations go to the folded series, each counted."""

    __slots__ = ("_folded",)

    def __init__(self, target: HistogramChild, folded: CounterChild | None) -> None:
        super().__init__(target.counts, target.bounds)
        self._folded = folded

    def observe(self, value: float) -> None:
        super().observe(value)
        if self._folded is not None:
            self._folded.inc()


def _escape_value(value: str) -> str:
    """A label value as both text formats write it (prometheus_client's escaping of values)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


#: The kept text of one series: a counter's line prefix, or a histogram's (bucket prefixes, count
#: prefix, sum prefix).
_Line = TypeVar("_Line", str, tuple[list[str], str, str])


class _Text(Generic[_Line]):
    """The exposition of one fast family, written directly (prometheus_client's generic writer spends
    ~10 µs a sample validating and escaping names; here the label part of each series is formatted once
    and kept, so a render is string joins). Byte for byte what prometheus_client writes, in the 0.0.4
    text format and in OpenMetrics 1.0 (tests/test_metrics.py compares both); the names are valid
    legacy names, which every escaping scheme this is used with leaves alone."""

    __slots__ = ("head", "head_om", "sample", "order", "le_at", "lines")

    def __init__(self, name: str, kind: str, documentation: str, labelnames: Sequence[str]) -> None:
        exposed = name + "_total" if kind == "counter" else name
        text_doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
        self.head = f"# HELP {exposed} {text_doc}\n# TYPE {exposed} {kind}\n"
        self.head_om = f"# HELP {name} {_escape_value(documentation)}\n# TYPE {name} {kind}\n"
        self.sample = exposed if kind == "counter" else name
        # labels are written sorted by name (a histogram's `le` among them)
        self.order = sorted(range(len(labelnames)), key=lambda i: labelnames[i])
        self.le_at = sum(1 for n in labelnames if n < "le")
        self.lines: dict[LabelKey, _Line] = {}  # key → its formatted label parts (one entry per series)

    def labels(self, names: Sequence[str], key: LabelKey) -> list[str]:
        """`name="value"` of each label of `key`, in the written order."""
        return [f'{names[i]}="{_escape_value(key[i])}"' for i in self.order]


class FastCounter:
    """A counter family whose series are `CounterChild`ren keyed by label-value tuples, at most
    `budget` of them (plus the `other` series new combinations fold into once it is reached).

    `labels(name=value, ...)` returns the child of a combination, created on first call (the budget
    applies then): keep it and `inc` it; `inc(key, amount)` is the same for one update."""

    __slots__ = ("name", "documentation", "labelnames", "_children", "_budget", "_text")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name  # without the `_total` suffix, as prometheus_client expects
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[LabelKey, CounterChild] = {}
        self._budget = _Budget(name, self.labelnames)
        self._text: _Text[str] = _Text(name, "counter", documentation, self.labelnames)

    @property
    def values(self) -> dict[LabelKey, float]:
        """A snapshot: label-value tuple → value, in the order the series were created."""
        return {key: child.value for key, child in list(self._children.items())}

    def labels(self, **values: str) -> CounterChild:
        """The child of the combination `values` (label name → value; exactly the family's names)."""
        return self.child(key_of(self.labelnames, values))

    def child(self, key: LabelKey) -> CounterChild:
        """The child of `key` (label values in `labelnames` order): a present one, else a new one, or
        past the budget one that updates the folded series."""
        children = self._children
        child = children.get(key)
        if child is not None:
            return child
        if not self._budget.full(len(children)):
            child = children[key] = CounterChild()
            return child
        folded = self._budget.fold(key)
        target = children.get(folded)
        if target is None:
            target = children[folded] = CounterChild()
        if folded == key:
            return target
        return _FoldedCounterChild(target, self._budget.fold_counter())

    def inc(self, key: LabelKey, amount: float = 1.0) -> None:
        """Add `amount` under `key` (label values in `labelnames` order)."""
        self.child(key).inc(amount)

    def get(self, *key: str) -> float:
        child = self._children.get(tuple(key))
        return 0.0 if child is None else child.value

    def collect(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, value in list(self.values.items()):
            family.add_metric(key, value)
        return family

    def write(self, out: list[str], open_metrics: bool) -> None:
        """Append this family's exposition to `out` (see `_Text`)."""
        text = self._text
        out.append(text.head_om if open_metrics else text.head)
        lines = text.lines
        for key, value in list(self.values.items()):
            prefix = lines.get(key)
            if prefix is None:
                parts = text.labels(self.labelnames, key)
                prefix = lines[key] = f"{text.sample}{{{','.join(parts)}}} " if parts else f"{text.sample} "
            out.append(f"{prefix}{floatToGoString(value)}\n")


class FastHistogram:
    """A histogram family; its series are `HistogramChild`ren, at most `budget` of them, as
    `FastCounter` (`labels(...)` returns the child to keep; `observe(key, value)` for one update)."""

    __slots__ = ("name", "documentation", "labelnames", "bounds", "_children", "_budget", "_text", "_les")

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(b) for b in bounds)
        self._children: dict[LabelKey, HistogramChild] = {}
        self._budget = _Budget(name, self.labelnames)
        self._text: _Text[tuple[list[str], str, str]] = _Text(name, "histogram", documentation, self.labelnames)
        self._les = [*(_format_bound(b) for b in self.bounds), "+Inf"]

    @property
    def children(self) -> dict[LabelKey, list[float]]:
        """Label-value tuple → per-bucket counts (last bucket `+Inf`) and the sum, in creation order."""
        return {key: child.counts for key, child in list(self._children.items())}

    def labels(self, **values: str) -> HistogramChild:
        """The child of the combination `values` (label name → value; exactly the family's names)."""
        return self.child(key_of(self.labelnames, values))

    def child(self, key: LabelKey) -> HistogramChild:
        """The child of `key` (label values in `labelnames` order): a present one, else a new one, or
        past the budget one that observes into the folded series."""
        children = self._children
        child = children.get(key)
        if child is not None:
            return child
        if not self._budget.full(len(children)):
            child = children[key] = self._new_child()
            return child
        folded = self._budget.fold(key)
        target = children.get(folded)
        if target is None:
            target = children[folded] = self._new_child()
        if folded == key:
            return target
        return _FoldedHistogramChild(target, self._budget.fold_counter())

    def _new_child(self) -> HistogramChild:
        return HistogramChild([0.0] * (len(self.bounds) + 2), self.bounds)  # buckets…, +Inf, sum

    def observe(self, key: LabelKey, value: float) -> None:
        """Count `value` under `key` (label values in `labelnames` order)."""
        self.child(key).observe(value)

    def count(self, *key: str) -> int:
        child = self.children.get(tuple(key))
        return 0 if child is None else int(sum(child[:-1]))

    def collect(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        labels = [*(_format_bound(b) for b in self.bounds), "+Inf"]
        for key, child in list(self.children.items()):
            counts = list(child)
            cumulative, running = [], 0.0
            for label, count in zip(labels, counts[:-1], strict=True):
                running += count
                cumulative.append((label, running))
            family.add_metric(list(key), cumulative, counts[-1])
        return family

    def write(self, out: list[str], open_metrics: bool) -> None:
        """Append this family's exposition to `out` (see `_Text`)."""
        text = self._text
        out.append(text.head_om if open_metrics else text.head)
        lines = text.lines
        name = self.name
        for key, child in list(self.children.items()):
            prefixes = lines.get(key)
            if prefixes is None:
                parts = text.labels(self.labelnames, key)
                before, after = ",".join(parts[:text.le_at]), ",".join(parts[text.le_at:])
                before = before + "," if before else ""
                after = "," + after if after else ""
                labels = f"{{{','.join(parts)}}}" if parts else ""
                prefixes = lines[key] = (
                    [f'{name}_bucket{{{before}le="{le}"{after}}} ' for le in self._les],
                    f"{name}_count{labels} ", f"{name}_sum{labels} ")
            buckets, count_prefix, sum_prefix = prefixes
            counts = list(child)
            running = 0.0
            for prefix, count in zip(buckets, counts[:-1], strict=True):
                running += count
                out.append(f"{prefix}{floatToGoString(running)}\n")
            out.append(f"{count_prefix}{floatToGoString(running)}\n")
            out.append(f"{sum_prefix}{floatToGoString(counts[-1])}\n")


def _format_bound(bound: float) -> str:
    return str(int(bound)) + ".0" if bound == int(bound) else repr(bound)


#: Set (per thread) while `Metrics` renders: the fast families are then written directly, not collected.
_direct = threading.local()


class _FastFamilies(Collector):
    """Exposes a group of fast families (and callback gauges) to a registry."""

    def __init__(self) -> None:
        self._families: list[FastCounter | FastHistogram] = []
        self._gauges: list[tuple[str, str, Sequence[str], Callable[[], Iterable[tuple[LabelKey, float]]]]] = []

    def counter(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> FastCounter:
        family = FastCounter(name, documentation, labelnames)
        self._families.append(family)
        return family

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str], bounds: Sequence[float],
    ) -> FastHistogram:
        family = FastHistogram(name, documentation, labelnames, bounds)
        self._families.append(family)
        return family

    def gauge(
        self, name: str, documentation: str, labelnames: Sequence[str],
        read: Callable[[], Iterable[tuple[LabelKey, float]]],
    ) -> None:
        self._gauges.append((name, documentation, labelnames, read))

    def write(self, out: list[str], open_metrics: bool) -> None:
        """The fast families' exposition (see `_Text`), in the order `collect` yields them."""
        for family in self._families:
            family.write(out, open_metrics)

    def collect(self) -> Iterable[CounterMetricFamily | HistogramMetricFamily | GaugeMetricFamily]:
        if not getattr(_direct, "active", False):  # `Metrics.render` writes them itself
            for family in self._families:
                yield family.collect()
        for name, documentation, labelnames, read in self._gauges:
            gauge = GaugeMetricFamily(name, documentation, labels=labelnames)
            for key, value in read():
                gauge.add_metric(list(key), value)
            yield gauge


class DomainMetrics:
    """The per-record families: what the pipeline updates for every record and body."""

    def __init__(self, buckets: Buckets) -> None:
        f = self.collector = _FastFamilies()
        sms = ("operation", "result", "number_type", "country", "resource")
        self.operations = f.counter("acs_sms_operations", "SMSOperational records, by operation and outcome.", sms)
        self.failures = f.counter(
            "acs_sms_failures",
            "SMSOperational records whose ResultType is not Succeeded, by ResultSignature.",
            ("operation", "result_signature", "number_type", "country", "resource"),
        )
        self.api_duration = f.histogram(
            "acs_sms_api_duration_seconds", "DurationMs of SMSOperational records, in seconds.",
            ("operation",), buckets.api_duration_seconds,
        )
        self.sender_operations = f.counter(
            "acs_sms_sender_operations",
            "SMSOperational records by the organisation's own sender number (PhoneNumber) listed in "
            "pipeline.labels.senders (any other: other; none: unknown); empty unless senders are listed.",
            ("operation", "result", "resource", "sender"),
        )
        self.delivery_latency = f.histogram(
            "acs_sms_delivery_latency_seconds",
            "Delivery report time minus the send time: of the sent record with the same MessageId "
            "(source=paired), or embedded in the MessageId when the send was not seen here (source=message_id).",
            ("result", "number_type", "source", "resource"), buckets.delivery_latency_seconds,
        )
        self.unmatched_reports = f.counter(
            "acs_sms_delivery_reports_unmatched",
            "Delivery reports whose sent record was not seen within the correlation window and whose "
            "MessageId carries no usable send time (or that had no MessageId or time to match on).",
            ("result", "resource"),
        )
        self.correlation_evictions = f.counter(
            "acs_sms_correlation_evictions",
            "Records that waited for their delivery partner and were dropped from the bounded correlation "
            "window, by side (sent, delivery_report) and reason (age, capacity, replaced, too_far_apart).",
            ("side", "reason"),
        )
        self.delivery_attempts = f.histogram(
            "acs_sms_delivery_attempts", "DeliveryAttempts of delivery reports.", ("result",), buckets.delivery_attempts
        )
        self.message_characters = f.counter(
            "acs_sms_message_characters", "Sum of OutgoingMessageLength / IncomingMessageLength.", ("direction",)
        )
        self.usage_quantity = f.counter("acs_usage_quantity", "Sum of Quantity of Usage records.",
                                        ("usage_type", "unit_type", "resource"))
        self.usage_records = f.counter("acs_usage_records", "Usage records.", ("usage_type", "unit_type", "resource"))
        self.records = f.counter(
            "acs_consumer_records",
            "Records by category and outcome: processed, invalid (failed validation), skipped (category not "
            "parsed), duplicate (seen before within the duplicate window).",
            ("category", "outcome"),
        )
        self.decode_errors = f.counter(
            "acs_consumer_decode_errors", "Event bodies that yielded no records, by reason.", ("reason",)
        )
        self.repaired_bodies = f.counter(
            "acs_consumer_repaired_bodies",
            "Event bodies that were not strict JSON and were repaired (control characters, single quotes, NaN).",
        )
        self.events = f.counter(
            "acs_consumer_events", "Event Hubs events (bodies) received, by partition.", ("partition",)
        )
        self.record_age = f.histogram(
            "acs_consumer_record_age_seconds",
            "Processing time minus record time (includes Azure Monitor's own delay).",
            ("category",), buckets.age_seconds,
        )
        self.event_age = f.histogram(
            "acs_consumer_event_age_seconds", "Processing time minus the event's enqueued time.", (),
            buckets.age_seconds,
        )
        self.series_folded = f.counter(
            "acs_consumer_series_folded",
            "Updates of a family at its series budget (pipeline.labels.series_per_family) that went to its "
            "'other' series (record labels 'other') because their label combination was new, by family.",
            ("family",),
        )

    def families(self) -> list[FastCounter | FastHistogram]:
        """Every per-record family."""
        return [family for family in vars(self).values() if isinstance(family, (FastCounter, FastHistogram))]

    def limit_series(self, budget: int, resources: Iterable[str] = ()) -> None:
        """Give every family (but `series_folded`, bounded by the number of families) a total budget of
        `budget` series: new label combinations beyond it fold into the family's `other` series, which
        keeps the closed labels and the listed `resources` (`pipeline.labels.resources`)."""
        for family in self.families():
            if family is not self.series_folded:
                family._budget.budget = budget  # noqa: SLF001 - the budget is this module's own
                family._budget.folded = self.series_folded  # noqa: SLF001
                family._budget.keep_resources(resources)  # noqa: SLF001


#: Why the HTTP server refused a request or connection (`acs_consumer_http_refused_total`).
HTTP_REFUSALS = ("unauthorized", "not_acceptable", "connection_limit", "header_timeout", "send_timeout")


class ConsumerMetrics:
    """The shell's own families (checkpoints, lag, ownership, client errors, build info)."""

    def __init__(self, registry: CollectorRegistry, version: str) -> None:
        self.checkpoints = Counter(
            "acs_consumer_checkpoints", "Checkpoint writes by partition and outcome (ok, error).",
            ("partition", "outcome"), registry=registry,
        )
        self.unscraped_checkpoints = Counter(
            "acs_consumer_unscraped_checkpoints",
            "Checkpoints written past the last completed /metrics scrape because no scrape had completed "
            "for checkpoint.no_scrape_seconds: the counts of the events they skip may never reach Prometheus.",
            registry=registry,
        )
        self.dead_letters = Counter(
            "acs_consumer_dead_letters",
            "Bodies written to the dead-letter container, by outcome (written, error, dropped).",
            ("outcome",), registry=registry,
        )
        self.partition_lag = Gauge(
            "acs_consumer_partition_lag_events",
            "Last enqueued sequence number minus last processed sequence number, per partition.",
            ("partition",), registry=registry,
        )
        self.partition_stalled = Gauge(
            "acs_consumer_partition_stalled_seconds",
            "Seconds an owned partition with waiting events has gone without processing one (0 while it "
            "keeps up or nothing waits).",
            ("partition",), registry=registry,
        )
        self.last_event_timestamp = Gauge(
            "acs_consumer_last_event_timestamp_seconds", "Enqueued time of the last processed event, per partition.",
            ("partition",), registry=registry,
        )
        self.owned_partitions = Gauge(
            "acs_consumer_owned_partitions", "Partitions this replica owns now.", registry=registry
        )
        self.errors = Counter(
            "acs_consumer_errors",
            "Errors of the Event Hubs client and the checkpoint store, by kind (consumer/errors.py).",
            ("kind",), registry=registry,
        )
        for kind in ERROR_KINDS:  # every kind from 0, so that increase() and alerts see the first error
            self.errors.labels(kind)
        self.http_refused = Counter(
            "acs_consumer_http_refused",
            "HTTP requests and connections refused, by reason (unauthorized, not_acceptable, connection_limit, "
            "header_timeout, send_timeout; consumer/http.py).", ("reason",), registry=registry,
        )
        for reason in HTTP_REFUSALS:
            self.http_refused.labels(reason)
        self.batch_duration = Histogram(
            "acs_consumer_batch_processing_seconds", "Time to process one received batch (parse and metric updates).",
            registry=registry, buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.build_info = Gauge("acs_consumer_build_info", "Always 1; the version label says which build runs.",
                                ("version",), registry=registry)
        self.build_info.labels(version).set(1)


#: Escaping schemes that leave a valid legacy name as it is (prometheus_client's `escape_metric_name`
#: and `escape_label_name`): for the service's names a render in any of them is the same bytes as
#: one without escaping. `dots` rewrites every `_` of every name and only prometheus_client's generic
#: writer does it, at ~25x the CPU of the direct render: it is refused.
_NAMES_UNCHANGED = frozenset({openmetrics.UNDERSCORES, openmetrics.VALUES, openmetrics.ALLOWUTF8})
_OPENMETRICS_1 = partial(openmetrics.generate_latest, escaping=openmetrics.UNDERSCORES, version="1.0.0")


class NotAcceptable(ValueError):
    """Every format an `Accept` header names is one `negotiate` refuses."""


@dataclass(frozen=True, slots=True)
class Exposition:
    """A format `/metrics` renders: OpenMetrics 1.0 or the text format, and the content type to send."""

    open_metrics: bool
    content_type: str


def _chosen(entry: str) -> Exposition | bool:
    """What prometheus_client's chooser makes of one entry of an `Accept` header: the format, if it is
    one rendered directly; True if it passes over the entry (another media type, a version below 1.0.0
    or none for text: the text format unless a later entry is chosen); False if it would choose a
    format that is refused (`dots` escaping, an OpenMetrics version other than 1.0.0) or cannot parse
    the entry (a version like `1.x` makes it compare str with int)."""
    try:
        encoder, content_type = choose_encoder(entry)
    except (TypeError, ValueError):
        return False
    if not isinstance(encoder, partial):
        return True
    if encoder.keywords.get("escaping") not in _NAMES_UNCHANGED:
        return False
    if encoder.func is generate_latest:
        return Exposition(False, content_type)
    return Exposition(True, content_type) if encoder.keywords.get("version") == "1.0.0" else False


def negotiate(accept: str | None) -> Exposition | None:
    """The format of a `/metrics` answer: prometheus_client's choice (`choose_encoder`: the first entry
    of the header that names OpenMetrics, or the text format version 1.0.0 or later; `q` is ignored;
    else the 0.0.4 text format) among the entries it would not refuse (`_chosen`). None when every entry
    of the header is refused (answered 406). Linear in the header's length."""
    refused = 0
    entries = (accept or "").split(",")
    for entry in entries:
        chosen = _chosen(entry)
        if isinstance(chosen, Exposition):
            return chosen
        refused += chosen is False
    if accept and refused == len(entries):
        return None
    return Exposition(False, CONTENT_TYPE_PLAIN_0_0_4)


class Metrics:
    """The registry and every family on it."""

    def __init__(self, buckets: Buckets, version: str, process_metrics: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.domain = DomainMetrics(buckets)
        self.registry.register(self.domain.collector)
        self.consumer = ConsumerMetrics(self.registry, version)
        if process_metrics:
            ProcessCollector(registry=self.registry)

    def add_gauge(
        self, name: str, documentation: str, labelnames: Sequence[str],
        read: Callable[[], Iterable[tuple[LabelKey, float]]],
    ) -> None:
        """A gauge read at scrape time (e.g. correlation map sizes)."""
        self.domain.collector.gauge(name, documentation, labelnames, read)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format (0.0.4)."""
        return self._render(generate_latest, open_metrics=False)

    def render_for(self, accept: str | None) -> tuple[bytes, str]:
        """The registry in the format an HTTP `Accept` header asks for (`negotiate`), and its content
        type; `NotAcceptable` when the header names only formats this service does not render."""
        exposition = negotiate(accept)
        if exposition is None:
            raise NotAcceptable(accept or "")
        return self.render_exposition(exposition.open_metrics), exposition.content_type

    def render_exposition(self, open_metrics: bool) -> bytes:
        """OpenMetrics 1.0 or the text format, names unescaped (what every escaping `negotiate`
        accepts makes of the service's names, all valid legacy names)."""
        if open_metrics:
            return self._render(_OPENMETRICS_1, open_metrics=True)
        return self._render(generate_latest, open_metrics=False)

    def _render(self, encoder: Callable[[CollectorRegistry], bytes], open_metrics: bool) -> bytes:
        """The fast families written directly, then the rest of the registry by prometheus_client's
        `encoder` (the fast families' collector comes first in the registry, so the order is the one
        `encoder(self.registry)` alone would give, and so are the bytes)."""
        out: list[str] = []
        self.domain.collector.write(out, open_metrics)
        _direct.active = True
        try:
            rest = encoder(self.registry)
        finally:
            _direct.active = False
        return "".join(out).encode("utf-8") + rest
