"""When to write a checkpoint: the policy, pure and clock-injected.

At-least-once: a checkpoint names the last event whose records are already in the metrics, so a
restart or a takeover replays at most what came after it. Checkpoints are rate-limited per
partition: one is due when `every_events` events are unsaved or `interval` seconds have passed since
the last attempt, whichever comes first. A failed write leaves the events unsaved and is retried at
the next opportunity after `interval` (not at every batch, so a storage outage is not hammered).
When a partition closes (ownership lost, shutdown) a final checkpoint is written if anything is
unsaved, whatever the rate limit says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class PartitionProgress:
    """What one owned partition has processed and saved."""

    partition: str
    last_event: Any = None  # the SDK's EventData of the last processed event
    last_sequence_number: int | None = None
    unsaved_events: int = 0
    last_attempt: float = 0.0  # clock time of the last checkpoint attempt (0: none yet)
    saved_sequence_number: int | None = None
    failures_in_a_row: int = 0

    def processed(self, event: Any, sequence_number: int) -> None:
        self.last_event = event
        self.last_sequence_number = sequence_number
        self.unsaved_events += 1


class CheckpointPolicy:
    def __init__(self, interval: float, every_events: int) -> None:
        self.interval = interval
        self.every_events = every_events

    def due(self, progress: PartitionProgress, now: float, final: bool = False) -> bool:
        if progress.unsaved_events == 0 or progress.last_event is None:
            return False
        if final:
            return True
        since_attempt = now - progress.last_attempt
        if progress.failures_in_a_row:
            return since_attempt >= self.interval
        return progress.unsaved_events >= self.every_events or since_attempt >= self.interval

    @staticmethod
    def attempted(progress: PartitionProgress, now: float, ok: bool, sequence_number: int | None) -> None:
        progress.last_attempt = now
        if ok:
            progress.failures_in_a_row = 0
            progress.saved_sequence_number = sequence_number
            # Events processed while the write was in flight stay unsaved.
            if sequence_number == progress.last_sequence_number:
                progress.unsaved_events = 0
        else:
            progress.failures_in_a_row += 1
