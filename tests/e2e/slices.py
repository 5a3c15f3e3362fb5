"""Loss proven by identity: every published event belongs to a slice, and each slice is counted apart.

A sum of counts per partition can hide a lost event behind a replayed one. So each event of the
reliability tests carries one SMSOperational record whose `country` and `number_type` name its slice:
the partition it went to and the phase it was published in (a stretch of `phase_seconds` of the
stream, or a named phase such as the end markers). Both labels stay within the contract (ISO 3166-1
countries × the documented number types: 1,245 slices), so `acs_sms_operations_total{country,
number_type}` of a scrape says how many events of each slice a replica counted. A slice counted
fewer times than it was published lost events; one counted more was replayed.

The records have no MessageId, so a replay within one replica is counted again (the duplicate window
keys on the MessageId), as the event counter counts it: nothing hides a replay either.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime

from acs_sms_devtools.scrape import Samples
from consumer.labels import ISO_COUNTRIES, NUMBER_TYPES

#: Every slice's (country, number_type), in the order slices are handed out.
SLICE_LABELS: tuple[tuple[str, str], ...] = tuple(
    (country, number_type) for number_type in NUMBER_TYPES for country in sorted(ISO_COUNTRIES))
_INDEX = {labels: index for index, labels in enumerate(SLICE_LABELS)}


class Slices:
    """Hands out event bodies by slice and keeps what was published of each (thread-safe)."""

    def __init__(self, phase_seconds: float = 1.0) -> None:
        self.phase_seconds = phase_seconds
        self.published: Counter[int] = Counter()
        self.records = 0
        self._names: list[tuple[str, int | str]] = []  # slice index -> (partition, phase)
        self._index: dict[tuple[str, int | str], int] = {}
        self._started: float | None = None
        self._lock = threading.Lock()

    def phase(self) -> int:
        """The current phase: seconds since the first body, in steps of `phase_seconds`."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        return int((now - self._started) / self.phase_seconds)

    def bodies(self, partition: str, count: int, phase: int | str | None = None) -> list[bytes]:
        """`count` bodies for `partition` in `phase` (the current one when None), counted as published
        (the caller publishes them)."""
        with self._lock:
            key = (partition, self.phase() if phase is None else phase)
            index = self._index.get(key)
            if index is None:
                index = len(self._names)
                if index >= len(SLICE_LABELS):
                    raise RuntimeError(f"more than {len(SLICE_LABELS)} slices: use longer phases")
                self._index[key] = index
                self._names.append(key)
            self.published[index] += count
            self.records += count
            country, number_type = SLICE_LABELS[index]
        return [_body(country, number_type) for _ in range(count)]

    def name(self, index: int) -> str:
        partition, phase = self._names[index] if index < len(self._names) else ("?", "?")
        if isinstance(phase, int):
            return f"p{partition}@{phase * self.phase_seconds:g}s"
        return f"p{partition}:{phase}"

    def partition_of(self, index: int) -> str:
        return self._names[index][0]

    def slices_of(self, phase: int | str) -> dict[str, int]:
        """The slice index of `phase` in each partition that has one."""
        return {partition: index for index, (partition, p) in enumerate(self._names) if p == phase}


def counted(*scrapes: Samples | None) -> Counter[int]:
    """Events counted per slice, summed over `scrapes` (each a replica's scrape; None: none). A series
    whose labels name no slice counts under -1 (the tests require none)."""
    total: Counter[int] = Counter()
    for samples in scrapes:
        if samples is None:
            continue
        for (name, labels), value in samples.items():
            if name != "acs_sms_operations_total" or not value:
                continue
            pairs = dict(labels)
            total[_INDEX.get((pairs.get("country", ""), pairs.get("number_type", "")), -1)] += int(value)
    return total


def compare(slices: Slices, counts: Counter[int]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(lost, replayed, unknown) by slice name: published and counted fewer times, more times; counted
    and never published."""
    lost = {slices.name(i): n - counts.get(i, 0) for i, n in slices.published.items() if counts.get(i, 0) < n}
    replayed = {slices.name(i): counts[i] - n for i, n in slices.published.items() if counts.get(i, 0) > n}
    unknown = {slices.name(i): n for i, n in counts.items() if i not in slices.published}
    return lost, replayed, unknown


def _body(country: str, number_type: str) -> bytes:
    record = {
        "time": datetime.now(UTC).isoformat(),
        "operationName": "SMSMessagesSent",
        "category": "SMSOperational",
        "resultType": "Succeeded",
        "resultSignature": 202,
        "durationMs": 12,
        "properties": {"NumberType": number_type, "Country": country, "OutgoingMessageLength": 42},
    }
    return json.dumps({"records": [record]}).encode()
