"""Shared pieces of the hostile-input and PII end-to-end tests: batched publishing with the real SDK
producer, and the label-contract check of a /metrics scrape (docs/metrics.md, "Metric reference")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from azure.eventhub import EventData, EventHubProducerClient
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import Buckets
from consumer.labels import (
    CATEGORIES,
    DOCUMENTED_SIGNATURES,
    ISO_COUNTRIES,
    NUMBER_TYPES,
    OTHER,
    RESULTS,
    SMS_OPERATIONS,
    UNIT_TYPES,
    UNKNOWN,
    USAGE_TYPES,
    looks_like_name,
)
from consumer.metrics import DomainMetrics


def publish_batched(connection_string: str, bodies: Iterable[tuple[str, bytes]]) -> dict[str, list[int]]:
    """Send each (partition, body) as one event, packing consecutive events of a partition into
    batches; per partition, events keep their order. Returns, per partition, the index in `bodies`
    of each event in sequence-number order (event i of a fresh partition has sequence number i)."""
    order: dict[str, list[int]] = defaultdict(list)
    with EventHubProducerClient.from_connection_string(connection_string) as producer:
        batches: dict[str, object] = {}
        for index, (partition, body) in enumerate(bodies):
            batch = batches.get(partition) or producer.create_batch(partition_id=partition)
            try:
                batch.add(EventData(body))  # type: ignore[attr-defined]
            except ValueError:  # full: send, start another
                producer.send_batch(batch)  # type: ignore[arg-type]
                batch = producer.create_batch(partition_id=partition)
                batch.add(EventData(body))
            batches[partition] = batch
            order[partition].append(index)
        for batch in batches.values():
            if len(batch):  # type: ignore[arg-type]
                producer.send_batch(batch)  # type: ignore[arg-type]
    return dict(order)


def label_values(text: str) -> dict[str, dict[str, set[str]]]:
    """{family: {label: distinct values}} of a Prometheus text scrape."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for label, value in sample.labels.items():
                found[family.name][label].add(value)
    return found


#: How many values each open-ended label may have at most (config limits + `other` + `unknown`).
def contract_violations(text: str, partitions: Iterable[str], *, result_signatures: int = 50, usage_types: int = 50,
                        unit_types: int = 50, categories: int = 20, resources: int = 10,
                        listed_resources: Iterable[str] = (), senders: Iterable[str] = ()) -> list[str]:
    """Every label of every family checked against the contract (docs/metrics.md, "Metric reference"); returns what breaks it."""
    fixed: dict[str, set[str]] = {
        "operation": set(SMS_OPERATIONS) | {OTHER},
        "result": set(RESULTS) | {OTHER},
        "number_type": set(NUMBER_TYPES) | {OTHER, UNKNOWN},
        "country": set(ISO_COUNTRIES) | {OTHER, UNKNOWN},
        "partition": set(partitions),
        "outcome": {"processed", "invalid", "skipped", "duplicate", "written", "error", "dropped", "ok"},
        "reason": {"invalid_json", "not_records", "too_large", "encoding", "internal", "age", "capacity", "replaced",
                   "too_far_apart", "unauthorized", "not_acceptable", "connection_limit", "header_timeout",
                   "send_timeout"},
        "side": {"sent", "delivery_report"},
        "direction": {"outgoing", "incoming"},
        "source": {"paired", "message_id"},
        "sender": set(senders) | {OTHER, UNKNOWN},  # only the listed sender numbers: never a first-seen one
        "family": {family.name for family in DomainMetrics(Buckets()).families()},
    }
    open_ended = {"result_signature": result_signatures, "usage_type": usage_types, "unit_type": unit_types,
                  "category": categories, "kind": 50, "resource": resources}
    # values ACS documents are admitted on top of the first-N limit
    known = {"result_signature": set(DOCUMENTED_SIGNATURES), "usage_type": set(USAGE_TYPES),
             "unit_type": set(UNIT_TYPES), "category": set(CATEGORIES), "resource": set(listed_resources)}
    problems = []
    for family, labels in label_values(text).items():
        for label, values in labels.items():
            if label in fixed:
                extra = values - fixed[label]
                if extra:
                    problems.append(f"{family}{{{label}}}: values outside the contract: {sorted(extra)[:10]}")
            elif label in open_ended:
                admitted = values - {OTHER, UNKNOWN} - known.get(label, set())
                if len(admitted) > open_ended[label]:
                    problems.append(f"{family}{{{label}}}: {len(admitted)} values, limit {open_ended[label]}")
                if label == "resource" and not all(v == v.lower() and looks_like_name(v) for v in admitted):
                    problems.append(f"{family}{{resource}}: values that are not resource names {sorted(admitted)[:10]}")
                if label == "result_signature" and not all(v.isdigit() for v in admitted):
                    problems.append(f"{family}{{result_signature}}: non-numeric values {sorted(admitted)[:10]}")
            elif label == "le" or (family, label) == ("acs_consumer_build_info", "version"):
                pass
            else:
                problems.append(f"{family}{{{label}}}: a label the contract does not name ({len(values)} values)")
    return problems
