"""Delivery latency: match each delivery report with its sent record by MessageId.

The two halves of a pair may arrive in either order (they can sit on different partitions, and Azure
Monitor batches categories independently), so whichever arrives first waits in a map until its
partner comes. The map is bounded by count and by age, so memory stays bounded however long the
process runs: the oldest entries are evicted first, and what is evicted is reported to the caller,
which counts it (an evicted report is an unmatched report).

Ages are measured on the caller's clock (processing time), not on record times, so a replay of
old captures and a live stream behave the same. Latency itself is report time − sent time, from the
records. Pure: no I/O; the caller passes `now`.

With several replicas the two halves of a pair usually land on different replicas (Azure Monitor
spreads records over partitions without a key), so a report whose send is not waiting here takes its
send time from its MessageId when it can (`send_time_from_message_id`: ACS writes outgoing ids as
`Outgoing_<yyyyMMddHHmmss><GUID>_<region>`, the UTC send time to the second) instead of waiting for a
send that may never come. Each latency says where its send time came from: `paired` (the send record,
exact) or `message_id` (the id, ±0.5 s).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Generic, NamedTuple, TypeVar

#: `source` of a latency: from the matching send record, or from the send time in the MessageId.
PAIRED = "paired"
MESSAGE_ID = "message_id"

#: The eviction reason of a pair whose send and report are further apart than the correlation window
#: (or whose send is after its report by more than `MESSAGE_ID_SKEW_SECONDS`): reported with the
#: pair's report, which is then unmatched; no latency is observed.
TOO_FAR_APART = "too_far_apart"

#: How far the send time in a MessageId may be after the report's time (or the processing time)
#: before it is refused: clock skew between Azure components, not more.
MESSAGE_ID_SKEW_SECONDS = 60.0

#: The key a MessageId waits under (`arrive`): its `hash()`, a fixed-size int (SipHash-1-3 with a per-process
#: random key, 64 bits), so the window's memory does not depend on how long ids are: 200,000 waiting
#: 8 KB ids would otherwise hold 1.6 GB. Computing it is free (a str caches its hash, which the dict
#: lookup needs anyway). Two different ids collide with probability ~2^-64 per pair waiting: over
#: 10^12 records against 200,000 waiting, about one mispaired latency in a hundred years; an id
#: never leaves the process and an adversary cannot aim at the secret hash key.

_OUTGOING = "Outgoing_"
# `Outgoing_` (9) + 14 digits + GUID (36) + optional `_<region>` (at most 33): anything longer is refused
# before it is looked at, so parsing is bounded whatever the input.
_MAX_OUTGOING_ID = 9 + 14 + 36 + 33
_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_REGION = re.compile(r"_[A-Za-z0-9]{1,32}")


def send_time_from_message_id(message_id: str) -> float | None:
    """The UTC send time ACS embeds in an outgoing MessageId, in seconds since the epoch (the start of
    its second), or None when `message_id` is not exactly `Outgoing_<yyyyMMddHHmmss><GUID>` with an
    optional `_<region>` (letters and digits) and a valid date-time. Strict and linear: the length is
    bounded first, every part is matched in full (fixed-length slices, no backtracking), so an id of
    any other form (a bare GUID, an incoming id, garbage) is refused and stays opaque."""
    if len(message_id) > _MAX_OUTGOING_ID or not message_id.startswith(_OUTGOING):
        return None
    digits = message_id[9:23]
    if len(digits) != 14 or not (digits.isascii() and digits.isdigit()):
        return None
    if _GUID.fullmatch(message_id, 23, 59) is None:
        return None
    if len(message_id) > 59 and _REGION.fullmatch(message_id, 59) is None:
        return None
    try:
        return datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
                        int(digits[8:10]), int(digits[10:12]), int(digits[12:14]), tzinfo=UTC).timestamp()
    except ValueError:  # year 0, month 13, 30 February, hour 24, ...
        return None

K = TypeVar("K")
V = TypeVar("V")

#: At most this many over-age entries leave a window in one `put`/`add`/`arrive` (a few milliseconds).
#: A window filled in a burst (a catch-up after an outage) ages out in a burst two hours later, and the
#: body that happens to arrive then, possibly processed on the event loop, must not pay for all of it
#: (400,000 evictions held the loop ~0.4 s); the rest leave with the next calls and the periodic
#: `expire`. An over-age entry may so outlive `max_age` by a little: it still counts as present.
EVICT_STEP = 2048


class ExpiringMap(Generic[K, V]):
    """An insertion-ordered map that holds at most `max_entries` entries, none older than `max_age`
    (seconds on the caller's clock). `put` returns what it had to evict, oldest first, with the
    reason (`capacity` or `age`)."""

    __slots__ = ("_entries", "max_entries", "max_age", "_fresh_at")

    def __init__(self, max_entries: int, max_age: float) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self.max_entries = max_entries
        self.max_age = max_age
        # The `now` at which `add` last found the oldest (first) entry within the age, or None. It stays
        # so while entries are only appended, so `add` at that same `now` (the records of one body, in
        # `Pipeline._apply`) makes the age check once, not per record; whatever removes entries forgets
        # it. (Code that edits `_entries` itself, as `DeliveryCorrelator.arrive` does, must not `add`.)
        self._fresh_at: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def oldest_within_age(self, now: float) -> bool:
        """Whether the oldest entry (there is one) is at most `max_age` old at `now`."""
        return next(iter(self._entries.values()))[0] >= now - self.max_age

    def pop(self, key: K) -> V | None:
        self._fresh_at = None
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[1]

    def put(self, key: K, value: V, now: float) -> list[tuple[str, V]]:
        """Insert (or refresh) `key`, then evict what is over age or over capacity."""
        entries = self._entries
        if key in entries:
            del entries[key]
            self._fresh_at = None
        entries[key] = (now, value)
        # The common case, checked without the loops of `expire`: nothing is over age or capacity.
        if len(entries) <= self.max_entries and self.oldest_within_age(now):
            return []
        return self.expire(now, EVICT_STEP)

    def add(self, key: K, value: V, now: float) -> bool:
        """Insert `key` if it is absent and say so (True); leave a present key as it is (False).
        Evicts like `put`, without reporting what (one lookup instead of `in` then `put`). The hot
        path (`Pipeline._apply` calls it for every record): the age check is skipped when the oldest
        entry is known to be within the age at this `now` (`_fresh_at`)."""
        entries = self._entries
        if key in entries:
            return False
        entries[key] = (now, value)
        if len(entries) > self.max_entries:
            self.expire(now, EVICT_STEP)
        elif now != self._fresh_at:  # the oldest entry is not known to be within the age at `now` yet
            if not self.oldest_within_age(now):
                self.expire(now, EVICT_STEP)
            else:
                self._fresh_at = now
        return True

    def expire(self, now: float, limit: int | None = None) -> list[tuple[str, V]]:
        """Evict what is over age (at most `limit` entries of it, all without a limit), then what is
        over capacity, oldest first."""
        entries = self._entries
        evicted: list[tuple[str, V]] = []
        oldest_allowed = now - self.max_age
        self._fresh_at = None
        while entries and (limit is None or len(evicted) < limit):
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
    resource: str = ""  # bounded `resource` label


_new_tuple = tuple.__new__  # Waiting(...) without the Python-level __new__ of a NamedTuple


class DeliveryCorrelator:
    """Pairs sent records with delivery reports by MessageId, both orders, bounded. With
    `from_message_id`, a report whose send is not waiting gets its latency from the send time in its
    MessageId when that parses and is plausible (see `estimate`), instead of waiting."""

    __slots__ = ("_waiting", "_pending", "from_message_id")

    def __init__(self, max_entries: int, max_age: float, from_message_id: bool = False) -> None:
        self._waiting: ExpiringMap[int, Waiting] = ExpiringMap(max_entries, max_age)  # hash(MessageId) → half
        self._pending = {"sent": 0, "delivery_report": 0}
        self.from_message_id = from_message_id

    def __len__(self) -> int:
        return len(self._waiting)

    def pending(self) -> dict[str, int]:
        """How many of each side wait for their partner now."""
        return dict(self._pending)

    def expire(self, now: float, limit: int | None = None) -> list[tuple[str, Waiting]]:
        return self._forget(self._waiting.expire(now, limit))

    def estimate(self, message_id: str, time: float, now: float) -> float | None:
        """The latency of a report at record time `time` from the send time in its MessageId, or None
        when the id has none or it is implausible: after the report's time or the processing time by
        more than `MESSAGE_ID_SKEW_SECONDS`, or older than the report by more than the correlation
        window (a pair that far apart would not have been paired either). The id gives the second of
        the send; the send is taken at the middle of it (error at most ±0.5 s, 0 on average), and the
        latency is clamped at 0 like a paired one."""
        sent = send_time_from_message_id(message_id)
        if sent is None or sent > time + MESSAGE_ID_SKEW_SECONDS or sent > now + MESSAGE_ID_SKEW_SECONDS:
            return None
        latency = time - (sent + 0.5)
        if latency > self._waiting.max_age:
            return None
        return latency if latency > 0.0 else 0.0

    def _forget(self, evicted: list[tuple[str, Waiting]]) -> list[tuple[str, Waiting]]:
        for _, gone in evicted:
            self._pending[gone.side] -= 1
        return evicted

    def arrive(
        self, message_id: str, side: str, time: float, result: str, number_type: str, now: float, resource: str = ""
    ) -> tuple[tuple[float, tuple[str, str, str, str]] | None, Sequence[tuple[str, Waiting]]]:
        """A send (side `sent`, result "") or a report (side `delivery_report`): the match as a plain
        (latency, (result, number_type, source, resource)) tuple (the value and the labels of the
        latency histogram), and what was evicted (an empty tuple when nothing was, the
        common case; the pair's report under `TOO_FAR_APART` when the halves are further apart than the
        window, and no match). A `Waiting` is built only when one waits."""
        waiting = self._waiting
        entries = waiting._entries  # noqa: SLF001 - ExpiringMap.pop and .put, inlined (hot path), in this module
        key = hash(message_id)  # the key the MessageId waits under (see the comment above `_OUTGOING`)
        entry = entries.pop(key, None)
        pending = self._pending
        if entry is not None:
            partner = entry[1]
            partner_side = partner[0]
            pending[partner_side] -= 1
            if partner_side != side:
                if side == "delivery_report":
                    latency = time - partner[1]
                    labels = (result, number_type or partner[3], PAIRED, resource or partner[4])
                else:
                    latency = partner[1] - time
                    labels = (partner[2], partner[3] or number_type, PAIRED, partner[4] or resource)
                if latency <= waiting.max_age and latency >= -MESSAGE_ID_SKEW_SECONDS:
                    # Clock skew between Azure components can put a report a hair before its send.
                    return (latency if latency > 0.0 else 0.0, labels), ()
                # Further apart than the window (or the send after the report by more than clock skew):
                # no latency, as the MessageId path would give none; the pair's report is unmatched.
                report = partner if side == "sent" else _new_tuple(
                    Waiting, (side, time, result, number_type, resource))
                return None, [(TOO_FAR_APART, report)]
        # No partner (or a second record of the same side, e.g. a resend with the same id: the
        # newer one replaces the older, which is reported as evicted).
        if side == "delivery_report" and self.from_message_id:
            estimated = self.estimate(message_id, time, now)
            if estimated is not None:  # done: the report does not wait for a send that may never come
                match = (estimated, (result, number_type, MESSAGE_ID, resource))
                return (match, ()) if entry is None else (match, [("replaced", entry[1])])
        pending[side] += 1
        entries[key] = (now, _new_tuple(Waiting, (side, time, result, number_type, resource)))
        if len(entries) <= waiting.max_entries and waiting.oldest_within_age(now):
            if entry is None:
                return None, ()
            return None, [("replaced", entry[1])]
        evicted = self._forget(waiting.expire(now, EVICT_STEP))
        if entry is not None:
            evicted.insert(0, ("replaced", entry[1]))
        return None, evicted
