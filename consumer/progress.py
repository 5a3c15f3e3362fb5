"""Whether each owned partition keeps up: its lag and how long it has gone without progress while
events wait on it. Pure and clock-injected: the receiver reports what happened, this says what it means
(`acs_consumer_partition_lag_events`, `acs_consumer_partition_stalled_seconds`, the `partitions` check of
/readyz, the lag of the progress log line).

A partition is *waiting* when a batch is in hand or the hub holds events after the last processed
one. Its stall is the time since it last made progress (processed an event, or had nothing waiting);
it is 0 while nothing waits. A partition that an error closed and the SDK claims again soon after
keeps its stall: a handler that fails again and again must not look freshly claimed each time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def partition_lag(last_enqueued: int, processed: int | None) -> int:
    """Events the hub holds after the last processed one; every event up to `last_enqueued` when none
    has been processed yet (where the receiver started is not known here)."""
    return last_enqueued + 1 if processed is None else max(0, last_enqueued - processed)


@dataclass(slots=True)
class Stall:
    """One owned partition as stall and lag tracking see it."""

    advanced_at: float  # clock time of its last progress (an event processed, or nothing waiting)
    last_enqueued: int | None = None  # the hub's last enqueued sequence number, as last read

    def enqueued(self, last: int) -> None:
        """A read of the hub's last enqueued sequence number (from a batch or a probe); a read older
        than one already seen never moves it back."""
        if self.last_enqueued is None or last > self.last_enqueued:
            self.last_enqueued = last

    def lag(self, processed: int | None) -> int | None:
        """`partition_lag`, None while the hub's last enqueued event is not known."""
        return None if self.last_enqueued is None else partition_lag(self.last_enqueued, processed)

    def waiting(self, processed: int | None, busy: bool) -> bool:
        """Whether events wait: a batch is in hand (`busy`), or the hub holds events after `processed`."""
        if busy:
            return True
        if self.last_enqueued is None:
            return False
        return processed is None or self.last_enqueued > processed

    def seconds(self, processed: int | None, busy: bool, now: float) -> float:
        """Seconds without progress while events wait (0 when nothing waits)."""
        if not self.waiting(processed, busy):
            return 0.0
        return max(0.0, now - self.advanced_at)


@dataclass(slots=True)
class _Errored:
    at: float  # when an error closed the partition (or was reported for it)
    advanced_at: float | None  # its stall's last progress then


class StallTracker:
    """Hands out each claimed partition's `Stall`, remembering across a close the stall of a partition
    an error closed, for a claim within `recent` seconds of that close."""

    def __init__(self, recent: float, clock: Callable[[], float]) -> None:
        self.recent = recent
        self.clock = clock
        self._errored: dict[str, _Errored] = {}

    def claimed(self, partition: str) -> Stall:
        """The stall of a partition just claimed: it goes on when an error closed it recently, else
        it starts now."""
        now = self.clock()
        errored = self._errored.pop(partition, None)
        if errored is not None and errored.advanced_at is not None and now - errored.at <= self.recent:
            return Stall(errored.advanced_at)
        return Stall(now)

    def failed(self, partition: str, stall: Stall | None) -> None:
        """An error was reported for the partition (the SDK closes it next)."""
        previous = self._errored.get(partition)
        advanced_at = stall.advanced_at if stall is not None else previous.advanced_at if previous else None
        self._errored[partition] = _Errored(self.clock(), advanced_at)

    def released(self, partition: str, stall: Stall | None) -> None:
        """The partition was closed: its stall is kept (from now) if an error closed it, else forgotten."""
        errored = self._errored.get(partition)
        if errored is None:
            return
        errored.at = self.clock()
        if stall is not None:
            errored.advanced_at = stall.advanced_at
