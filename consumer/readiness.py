"""Whether Event Hubs answers this replica: the `eventhub` check of /readyz, pure and clock-injected.

The receive loop existing says nothing: with a refused port, a wrong hub name, consumer group or key
it runs forever and receives nothing. What counts is what Event Hubs answered, from two sources:

- the hub: the partition ids read (by the SDK's first load-balancing round, then by the consumer's own
  probe every few seconds; this needs the namespace reachable, the key or identity accepted and the hub
  to exist);
- each partition's receive link: a batch with events is proof it is open; an error reported for the
  partition is a failure of its latest attempt (empty batches prove nothing: the SDK hands them over on
  time even while it retries a link that cannot open).

The check, first match wins, every outcome older than `max_age` forgotten:
1. a partition received events and has not failed since → ready (`receiving`);
2. a partition's latest attempt failed (a kind other than `partition_stolen`, which is a normal
   rebalance) → not ready, naming the kind: the hub answers, but no link opens (e.g. the consumer group
   does not exist);
3. the hub's latest answer was a failure → not ready, naming the kind (`unreachable`, `unauthorized`,
   `entity_not_found`, ...);
4. the hub answered → ready: links are opening, the hub is idle, or every partition is owned by
   other replicas (which keep their ownership fresh; this replica takes over when one stops);
5. nothing yet → not ready (`starting`), or the hub last answered too long ago.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from consumer.errors import BENIGN_KINDS


@dataclass(slots=True)
class _Outcome:
    ok: bool
    at: float
    kind: str = ""
    reason: str = ""


class EventHubsReadiness:
    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._hub: _Outcome | None = None
        self._partitions: dict[str, _Outcome] = {}

    # --- what happened ---------------------------------------------------------------------------

    def hub_answered(self) -> None:
        self._hub = _Outcome(True, self.clock())

    def hub_failed(self, kind: str, reason: str = "") -> None:
        self._hub = _Outcome(False, self.clock(), kind, reason)

    def received(self, partition: str) -> None:
        """A batch with events arrived on `partition` (which is also an answer of the hub)."""
        now = self.clock()
        for outcome in (self._partitions.get(partition), self._hub):
            if outcome is not None and outcome.ok:
                outcome.at = now
        if partition not in self._partitions or not self._partitions[partition].ok:
            self._partitions[partition] = _Outcome(True, now)
        if self._hub is None or not self._hub.ok:
            self._hub = _Outcome(True, now)

    def partition_failed(self, partition: str, kind: str, reason: str = "") -> None:
        self._partitions[partition] = _Outcome(False, self.clock(), kind, reason)

    # --- the check -------------------------------------------------------------------------------

    def check(self) -> tuple[bool, str]:
        now = self.clock()
        recent = {p: o for p, o in self._partitions.items() if now - o.at <= self.max_age}
        receiving = sorted(p for p, o in recent.items() if o.ok)
        if receiving:
            return True, f"receiving (partitions {', '.join(receiving)})"
        failing = [o for o in recent.values() if not o.ok and o.kind not in BENIGN_KINDS]
        if failing:
            last = max(failing, key=lambda o: o.at)
            return False, _failure(last, now, "receiving fails on every partition it tried")
        hub = self._hub
        if hub is not None and not hub.ok:
            return False, _failure(hub, now, "Event Hubs does not answer")
        if hub is not None and now - hub.at <= self.max_age:
            return True, f"Event Hubs answered {now - hub.at:.0f} s ago"
        if hub is None:
            return False, "starting: no Event Hubs operation has completed yet"
        return False, f"Event Hubs last answered {now - hub.at:.0f} s ago (limit {self.max_age:.0f} s)"


def _failure(outcome: _Outcome, now: float, what: str) -> str:
    """`<kind>: <what>, last error N s ago: <reason>` — the kind first, for a glance and for a grep."""
    text = f"{outcome.kind}: {what}, last error {now - outcome.at:.0f} s ago"
    return f"{text}: {outcome.reason}" if outcome.reason else text
