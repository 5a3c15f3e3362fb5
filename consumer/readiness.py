"""The checks of /readyz, pure and clock-injected: `eventhub_check`, `StoreReadiness`,
`partitions_check`, `shutdown_check` (what each means: consumer/app.py's docstring); the shell feeds
them and registers them with `consumer.http.Health`.

Most of this module is whether Event Hubs answers this replica (`EventHubsReadiness`, behind the
`eventhub` check).

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


#: A readiness check's answer: whether it passes, and the detail /readyz shows.
Check = tuple[bool, str]


def eventhub_check(receiving: bool, starting: str | None, readiness: EventHubsReadiness) -> Check:
    """The `eventhub` check: what Event Hubs answers, once the receive loop runs (before, the detail
    says what start-up waits for, and what the hub's probe answers meanwhile)."""
    if receiving:
        return readiness.check()
    if starting:
        return False, f"not receiving yet (start-up: {starting}); Event Hubs: {readiness.check()[1]}"
    return False, "not receiving"


class StoreReadiness:
    """The `checkpoint_store` check: the checkpoint storage account answered a request (a checkpoint
    write or the periodic probe) within `max_age` seconds."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self.answered_at: float | None = None

    def answered(self) -> None:
        self.answered_at = self.clock()

    def check(self, starting: str | None = None) -> Check:
        if self.answered_at is None:
            waiting = f" (start-up: {starting})" if starting else ""
            return False, f"checkpoint store has not answered yet{waiting}"
        age = self.clock() - self.answered_at
        if age > self.max_age:
            return False, f"checkpoint store last answered {age:.0f} s ago (limit {self.max_age:.0f} s)"
        return True, f"checkpoint store answered {age:.0f} s ago"


def partitions_check(stalled: dict[str, float], limit: float) -> Check:
    """The `partitions` check: no owned partition (`stalled`: each one's seconds without progress
    while events wait) has been stalled for longer than `limit` seconds."""
    over = {partition: seconds for partition, seconds in stalled.items() if seconds > limit}
    if over:
        names = ", ".join(f"{partition} ({seconds:.0f} s)" for partition, seconds in sorted(over.items()))
        return False, f"no progress while events wait on partition {names} (limit {limit:.0f} s)"
    return True, f"{len(stalled)} owned partitions progressing or idle"


def shutdown_check(shutting_down: bool) -> Check:
    """The `shutdown` check: fails from SIGTERM on, so the Service stops routing to this replica while
    `/metrics` is still served."""
    if shutting_down:
        return False, "shutting down: /metrics is served until the final counts are scraped"
    return True, "not shutting down"
