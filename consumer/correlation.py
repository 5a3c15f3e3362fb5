"""Delivery latency: match each delivery report with its sent record by MessageId.

The two halves of a pair may arrive in either order (they can sit on different partitions, and Azure
Monitor batches categories independently), so whichever arrives first waits in a map until its
partner comes. The map is bounded by count and by age, so memory stays bounded however long the
process runs: the oldest entries are evicted first, and what is evicted is reported to the caller,
which counts it (an evicted report is an unmatched report).

Ages are measured on the caller's clock (processing time), not on record times, so a replay of
old captures and a live stream behave the same. Latency itself is report time − sent time, from the
records. Pure: no I/O; the caller passes `now`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringMap(Generic[K, V]):
    """An insertion-ordered map that holds at most `max_entries` entries, none older than `max_age`
    (seconds on the caller's clock). `put` returns what it had to evict, oldest first, with the
    reason (`capacity` or `age`)."""

    __slots__ = ("_entries", "max_entries", "max_age")

    def __init__(self, max_entries: int, max_age: float) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.max_entries = max_entries
        self.max_age = max_age

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def put(self, key: K, value: V, now: float) -> list[tuple[str, V]]:
        """Insert (or refresh) `key`, then evict what is over age or over capacity."""
        entries = self._entries
        if key in entries:
            del entries[key]
        entries[key] = (now, value)
        # The common case, checked without the loops of `expire`: nothing is over age or capacity.
        if len(entries) <= self.max_entries and next(iter(entries.values()))[0] >= now - self.max_age:
            return []
        return self.expire(now)

    def add(self, key: K, value: V, now: float) -> bool:
        """Insert `key` if it is absent and say so (True); leave a present key as it is (False).
        Evicts like `put`, without reporting what (one lookup instead of `in` then `put`)."""
        entries = self._entries
        if key in entries:
            return False
        entries[key] = (now, value)
        if len(entries) > self.max_entries or next(iter(entries.values()))[0] < now - self.max_age:
            self.expire(now)
        return True

    def expire(self, now: float) -> list[tuple[str, V]]:
        entries = self._entries
        evicted: list[tuple[str, V]] = []
        oldest_allowed = now - self.max_age
        while entries:
            first_key = next(iter(entries))
            stamp, value = entries[first_key]
            if stamp >= oldest_allowed:
                break
            del entries[first_key]
            evicted.append(("age", value))
        while len(entries) > self.max_entries:
            _, (_, value) = entries.popitem(last=False)
            evicted.append(("capacity", value))
        return evicted


class Waiting(NamedTuple):
    """One half of a pair, waiting for the other. `side` is `sent` or `delivery_report`.
    (Immutable; a NamedTuple rather than a frozen dataclass: one is made per record, and a frozen
    dataclass takes three times as long to build.)"""

    side: str
    time: float  # record time, seconds since the epoch
    result: str  # bounded `result` label of the report (empty for a sent record)
    number_type: str  # bounded `number_type` label


class Match(NamedTuple):
    """A completed pair: observe `latency` seconds under the report's labels."""

    latency: float
    result: str
    number_type: str


class DeliveryCorrelator:
    """Pairs sent records with delivery reports by MessageId, both orders, bounded."""

    __slots__ = ("_waiting", "_pending")

    def __init__(self, max_entries: int, max_age: float) -> None:
        self._waiting: ExpiringMap[str, Waiting] = ExpiringMap(max_entries, max_age)
        self._pending = {"sent": 0, "delivery_report": 0}

    def __len__(self) -> int:
        return len(self._waiting)

    def pending(self) -> dict[str, int]:
        """How many of each side wait for their partner now."""
        return dict(self._pending)

    def sent(self, message_id: str, time: float, number_type: str, now: float) -> tuple[Match | None, list[tuple[str, Waiting]]]:
        return self._arrive(message_id, Waiting("sent", time, "", number_type), now)

    def report(
        self, message_id: str, time: float, result: str, number_type: str, now: float
    ) -> tuple[Match | None, list[tuple[str, Waiting]]]:
        return self._arrive(message_id, Waiting("delivery_report", time, result, number_type), now)

    def expire(self, now: float) -> list[tuple[str, Waiting]]:
        return self._forget(self._waiting.expire(now))

    def _forget(self, evicted: list[tuple[str, Waiting]]) -> list[tuple[str, Waiting]]:
        for _, gone in evicted:
            self._pending[gone.side] -= 1
        return evicted

    def _arrive(self, message_id: str, arriving: Waiting, now: float) -> tuple[Match | None, list[tuple[str, Waiting]]]:
        waiting = self._waiting
        entry = waiting._entries.pop(message_id, None)  # ExpiringMap.pop, without the call (hot path)
        partner = None if entry is None else entry[1]
        if partner is not None:
            self._pending[partner.side] -= 1
            if partner.side != arriving.side:
                sent, report = (partner, arriving) if arriving.side == "delivery_report" else (arriving, partner)
                # Clock skew between Azure components can put a report a hair before its send.
                latency = max(0.0, report.time - sent.time)
                return Match(latency, report.result, report.number_type or sent.number_type), []
        # No partner (or a second record of the same side, e.g. a resend with the same id: the
        # newer one replaces the older, which is reported as evicted).
        self._pending[arriving.side] += 1
        evicted = waiting.put(message_id, arriving, now)
        if evicted:
            self._forget(evicted)
        if partner is not None:
            evicted.insert(0, ("replaced", partner))
        return None, evicted
