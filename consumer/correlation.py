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
from collections.abc import Sequence
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


_new_tuple = tuple.__new__  # Waiting(...) without the Python-level __new__ of a NamedTuple


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
        match, evicted = self.arrive(message_id, "sent", time, "", number_type, now)
        return (None if match is None else Match(match[0], *match[1])), list(evicted)

    def report(
        self, message_id: str, time: float, result: str, number_type: str, now: float
    ) -> tuple[Match | None, list[tuple[str, Waiting]]]:
        match, evicted = self.arrive(message_id, "delivery_report", time, result, number_type, now)
        return (None if match is None else Match(match[0], *match[1])), list(evicted)

    def expire(self, now: float) -> list[tuple[str, Waiting]]:
        return self._forget(self._waiting.expire(now))

    def _forget(self, evicted: list[tuple[str, Waiting]]) -> list[tuple[str, Waiting]]:
        for _, gone in evicted:
            self._pending[gone.side] -= 1
        return evicted

    def arrive(
        self, message_id: str, side: str, time: float, result: str, number_type: str, now: float
    ) -> tuple[tuple[float, tuple[str, str]] | None, Sequence[tuple[str, Waiting]]]:
        """`sent` (side `sent`, result "") or `report` (side `delivery_report`) in one call, for the hot
        path: the match as a plain (latency, (result, number_type)) tuple (the value and the labels of
        the latency histogram), and what was evicted (an empty tuple when nothing was, the common
        case). A `Waiting` is built only when one waits."""
        waiting = self._waiting
        entries = waiting._entries  # ExpiringMap.pop and .put, inlined (hot path)
        entry = entries.pop(message_id, None)
        pending = self._pending
        if entry is not None:
            partner = entry[1]
            partner_side = partner[0]
            pending[partner_side] -= 1
            if partner_side != side:
                # Clock skew between Azure components can put a report a hair before its send.
                if side == "delivery_report":
                    latency = time - partner[1]
                    return (latency if latency > 0.0 else 0.0, (result, number_type or partner[3])), ()
                latency = partner[1] - time
                return (latency if latency > 0.0 else 0.0, (partner[2], partner[3] or number_type)), ()
        # No partner (or a second record of the same side, e.g. a resend with the same id: the
        # newer one replaces the older, which is reported as evicted).
        pending[side] += 1
        entries[message_id] = (now, _new_tuple(Waiting, (side, time, result, number_type)))
        if len(entries) <= waiting.max_entries and next(iter(entries.values()))[0] >= now - waiting.max_age:
            if entry is None:
                return None, ()
            return None, [("replaced", entry[1])]
        evicted = self._forget(waiting.expire(now))
        if entry is not None:
            evicted.insert(0, ("replaced", entry[1]))
        return None, evicted
