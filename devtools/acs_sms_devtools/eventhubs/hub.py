"""In-memory Event Hub model of the local endpoint: partitions, stored events, start positions.

Not thread-safe: everything here is used from the endpoint's event loop only.
"""

from __future__ import annotations

import bisect
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .codec import MessageSections, rebuild_message_annotations, split_sections

__all__ = ["StoredEvent", "Partition", "EventHub", "parse_selector", "DEFAULT_CONSUMER_GROUP"]

DEFAULT_CONSUMER_GROUP = "$Default"
PARTITION_KEY = b"x-opt-partition-key"


def now_ms() -> int:
    """Current time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class StoredEvent:
    """One event as stored in a partition; ``chunks`` is the complete encoded AMQP message."""

    sequence_number: int
    offset: int
    enqueued_ms: int
    partition_key: bytes | None
    chunks: tuple[bytes, ...]
    size: int


class Partition:
    """One partition: an append-only log with a retention cap (oldest events dropped)."""

    def __init__(self, partition_id: str, max_events: int) -> None:
        self.id = partition_id
        self.max_events = max_events
        self._events: list[StoredEvent] = []
        self._start = 0  # index of the first retained event in _events
        self.next_sequence = 0
        self.next_offset = 0
        self.last_enqueued_ms = 0
        self.listeners: set[Callable[[], None]] = set()

    # --- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._events) - self._start

    @property
    def begin_sequence(self) -> int:
        """Sequence number of the oldest retained event (``next_sequence`` when empty)."""
        if len(self):
            return self._events[self._start].sequence_number
        return self.next_sequence

    @property
    def last_sequence(self) -> int:
        """Sequence number of the last enqueued event, -1 if none ever was."""
        return self.next_sequence - 1

    @property
    def last_offset(self) -> str:
        """Offset of the last enqueued event as the service formats it ("-1" if none)."""
        if len(self):
            return str(self._events[-1].offset)
        return "-1"

    def get(self, sequence_number: int) -> StoredEvent | None:
        """The retained event with this sequence number, if any."""
        if not len(self):
            return None
        index = self._start + sequence_number - self._events[self._start].sequence_number
        if self._start <= index < len(self._events):
            return self._events[index]
        return None

    def events(self) -> list[StoredEvent]:
        """A copy of the retained events, oldest first."""
        return self._events[self._start :]

    def start_sequence(self, selector: str | None) -> int:
        """First sequence number a receiver with this start filter gets."""
        if selector is None:
            return self.begin_sequence
        kind, inclusive, value = parse_selector(selector)
        begin = self.begin_sequence
        if kind == "offset":
            if value == "-1":
                return begin
            if value == "@latest":
                return self.next_sequence
            target = int(value)
            retained = self._events[self._start :]
            offsets = [e.offset for e in retained]  # O(n) but only on attach
            index = bisect.bisect_left(offsets, target) if inclusive else bisect.bisect_right(offsets, target)
            return retained[index].sequence_number if index < len(retained) else self.next_sequence
        if kind == "sequence":
            n = int(value)
            return max(begin, n if inclusive else n + 1)
        # enqueued time
        ms = int(value)
        retained = self._events[self._start :]
        times = [e.enqueued_ms for e in retained]
        index = bisect.bisect_left(times, ms) if inclusive else bisect.bisect_right(times, ms)
        return retained[index].sequence_number if index < len(retained) else self.next_sequence

    # --- mutation ----------------------------------------------------------------------------
    def append(self, sections: MessageSections, partition_key: bytes | None, *, enqueued_ms: int) -> StoredEvent:
        """Store one event; the caller notifies listeners (once per batch) with :meth:`notify`."""
        seq = self.next_sequence
        offset = self.next_offset
        enqueued_ms = max(enqueued_ms, self.last_enqueued_ms)
        annotations = rebuild_message_annotations(
            sections.annotation_pairs, sequence_number=seq, offset=str(offset), enqueued_ms=enqueued_ms
        )
        chunks = (sections.header, annotations, sections.bare) if sections.header else (annotations, sections.bare)
        size = sum(len(c) for c in chunks)
        event = StoredEvent(seq, offset, enqueued_ms, partition_key, chunks, size)
        self._events.append(event)
        self.next_sequence = seq + 1
        self.next_offset = offset + max(size, 1)
        self.last_enqueued_ms = enqueued_ms
        self._trim()
        return event

    def _trim(self) -> None:
        excess = len(self) - self.max_events
        if excess > 0:
            self._start += excess
        if self._start > 4096 and self._start * 2 > len(self._events):
            del self._events[: self._start]
            self._start = 0

    def notify(self) -> None:
        """Tell the receivers waiting on this partition that events arrived."""
        for listener in list(self.listeners):
            listener()

    def clear(self) -> None:
        """Drop all events and reset sequence numbers and offsets."""
        self._events = []
        self._start = 0
        self.next_sequence = 0
        self.next_offset = 0
        self.last_enqueued_ms = 0


_SELECTOR = re.compile(
    r"amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'", re.IGNORECASE
)


def parse_selector(selector: str) -> tuple[str, bool, str]:
    """Parse ``apache.org:selector-filter:string`` into (kind, inclusive, value).

    kind is ``offset``, ``sequence`` or ``time``.
    """
    match = _SELECTOR.fullmatch(selector.strip())
    if not match:
        raise ValueError(f"unsupported selector filter: {selector!r}")
    name, op, value = match.groups()
    kind = {"offset": "offset", "sequence-number": "sequence", "enqueued-time": "time"}[name.lower()]
    return kind, op == ">=", value


@dataclass
class EventHub:
    """An Event Hub: name, partitions and consumer groups (``$Default`` always exists)."""

    name: str
    partition_count: int = 4
    consumer_groups: Iterable[str] = ()
    max_events_per_partition: int = 100_000
    created_ms: int = field(default_factory=now_ms)

    def __post_init__(self) -> None:
        if self.partition_count < 1:
            raise ValueError("an event hub needs at least one partition")
        groups = {DEFAULT_CONSUMER_GROUP.lower(): DEFAULT_CONSUMER_GROUP}
        for group in self.consumer_groups:
            groups.setdefault(group.lower(), group)
        self.consumer_groups = tuple(groups.values())
        self._group_keys = set(groups)
        self.partitions: dict[str, Partition] = {
            str(i): Partition(str(i), self.max_events_per_partition) for i in range(self.partition_count)
        }
        self._round_robin = 0

    def has_consumer_group(self, name: str) -> bool:
        """Consumer group names are case-insensitive, as in the service."""
        return name.lower() in self._group_keys

    def partition_for_key(self, key: bytes | str) -> Partition:
        """A stable partition for a partition key (a simple CRC32 hash, not the service's)."""
        if isinstance(key, str):
            key = key.encode("utf-8")
        return self.partitions[str(zlib.crc32(key) % self.partition_count)]

    def next_round_robin(self) -> Partition:
        """Partition for a send without partition key or id."""
        partition = self.partitions[str(self._round_robin % self.partition_count)]
        self._round_robin += 1
        return partition

    def enqueue_raw(
        self, messages: Iterable[bytes], *, partition: Partition | None = None, enqueued_ms: int | None = None
    ) -> list[StoredEvent]:
        """Store encoded AMQP messages (one event each) and notify receivers.

        With ``partition`` None, events with a partition key are hashed, the others go to one
        round-robin partition (one per call, as a batch stays together in the service).
        """
        stamp = now_ms() if enqueued_ms is None else enqueued_ms
        fallback: Partition | None = None
        touched: set[Partition] = set()
        stored: list[StoredEvent] = []
        # The same object is parsed once (its sections are then shared); the cache holds a reference
        # to each raw object so that ids are not reused while it lives.
        parsed: dict[int, tuple[bytes, MessageSections, bytes | None]] = {}
        for raw in messages:
            cached = parsed.get(id(raw))
            if cached is None:
                sections = split_sections(raw)
                cached = parsed[id(raw)] = (raw, sections, sections.annotation(PARTITION_KEY))
            _, sections, key = cached
            target = partition
            if target is None:
                if key:
                    target = self.partition_for_key(key)
                else:
                    fallback = fallback or self.next_round_robin()
                    target = fallback
            stored.append(target.append(sections, key, enqueued_ms=stamp))
            touched.add(target)
        for target in touched:
            target.notify()
        return stored

    def clear(self) -> None:
        """Drop every stored event."""
        for partition in self.partitions.values():
            partition.clear()
