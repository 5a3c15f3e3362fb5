"""When to write a checkpoint, and which event it names: the policy, pure and clock-injected.

Checkpoints are scrape-aligned, so that counts reach Prometheus at least once (the protocol and why:
docs/reliability.md): each `/metrics` render snapshots, when it starts, the last event each partition
had processed (`Scrapes.started`); when the response has been written completely, those become the
partitions' scraped marks (`Scrapes.completed`); a checkpoint names at most the scraped mark.

When no scrape has completed for `no_scrape_seconds` (Prometheus down), waiting for one would grow the
replay without bound: checkpoints then name the last processed event again, as without alignment,
and each such checkpoint is reported as unscraped (`CheckpointTarget.unscraped`; the shell counts and
logs them once per episode: `Scrapes.silence_began`).

Rate limit, per partition: a checkpoint is due when `every_events` events are unsaved or `interval`
seconds have passed since the last attempt, whichever comes first. A failed write leaves the events
unsaved and is retried at the next opportunity after `interval` (not at every batch, so a storage
outage is not hammered). When a partition closes (ownership lost, shutdown) a final checkpoint is
written if anything is unsaved, whatever the rate limit says; it follows the same alignment (at
shutdown the service first waits, bounded, for a scrape that reads the final counts: `awaiting_scrape`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Position:
    """A processed event of one partition: what a checkpoint can name."""

    sequence_number: int
    event: Any  # the SDK's EventData (what `update_checkpoint` takes)
    count: int  # events this partition's progress had processed up to and including it


@dataclass(slots=True)
class PartitionProgress:
    """What one owned partition has processed, what a completed scrape has shown of it, what is saved."""

    partition: str
    last_event: Any = None  # the SDK's EventData of the last processed event
    last_sequence_number: int | None = None
    processed_events: int = 0
    last_attempt: float = 0.0  # clock time of the last checkpoint attempt (0: none yet)
    saved_sequence_number: int | None = None
    saved_count: int = 0  # `processed_events` at the event the last successful checkpoint named
    failures_in_a_row: int = 0
    scraped: Position | None = None  # the last event whose counts a completed scrape rendered

    def processed(self, event: Any, sequence_number: int) -> None:
        self.last_event = event
        self.last_sequence_number = sequence_number
        self.processed_events += 1

    @property
    def unsaved_events(self) -> int:
        return self.processed_events - self.saved_count

    def position(self) -> Position | None:
        """The last processed event, if any."""
        if self.last_event is None or self.last_sequence_number is None:
            return None
        return Position(self.last_sequence_number, self.last_event, self.processed_events)


def awaiting_scrape(progress: PartitionProgress) -> bool:
    """Whether this partition has counted events that no completed scrape has read and no checkpoint
    names yet: a final checkpoint would have to leave them to the next owner."""
    scraped = progress.scraped.count if progress.scraped is not None else 0
    return progress.processed_events > max(scraped, progress.saved_count)


#: What `Scrapes.started` returns and `Scrapes.completed` takes back: each partition's last processed
#: event when a render started.
ScrapeSnapshot = tuple[tuple[PartitionProgress, Position], ...]


class Scrapes:
    """The `/metrics` scrapes of this process, as the checkpoints see them. `now` is the caller's clock."""

    def __init__(self, now: float) -> None:
        self.started_at = now
        self.last_completed: float | None = None
        self.completed_count = 0
        self.silent = False  # inside an episode of unscraped checkpoints (no scrape for too long)

    @staticmethod
    def started(partitions: Iterable[PartitionProgress]) -> ScrapeSnapshot:
        """A render starts: what it will show of each partition (everything processed before now)."""
        snapshot = []
        for progress in partitions:
            position = progress.position()
            if position is not None:
                snapshot.append((progress, position))
        return tuple(snapshot)

    def completed(self, snapshot: ScrapeSnapshot, now: float) -> float | None:
        """The render whose start made `snapshot` was written completely: its positions become the
        scraped marks (never moving one back: scrapes may overlap and finish out of order). Returns the
        length of the silence it ends, if it ends an episode of unscraped checkpoints, else None."""
        for progress, position in snapshot:
            if progress.scraped is None or position.count > progress.scraped.count:
                progress.scraped = position
        ended = None
        if self.silent:
            ended = now - (self.last_completed if self.last_completed is not None else self.started_at)
            self.silent = False
        self.last_completed = now
        self.completed_count += 1
        return ended

    def silent_for(self, now: float) -> float:
        """Seconds since the last completed scrape (since start-up when there was none)."""
        return now - (self.last_completed if self.last_completed is not None else self.started_at)

    def silence_began(self) -> bool:
        """An unscraped checkpoint was written: True for the first of an episode (log it once)."""
        if self.silent:
            return False
        self.silent = True
        return True


@dataclass(frozen=True, slots=True)
class CheckpointTarget:
    """The event a due checkpoint names; `unscraped` when no completed scrape has read it (alignment
    on, but no scrape for `no_scrape_seconds`)."""

    position: Position
    unscraped: bool = False

    @property
    def sequence_number(self) -> int:
        return self.position.sequence_number


class CheckpointPolicy:
    def __init__(self, interval: float, every_events: int, scrapes: Scrapes | None = None,
                 no_scrape_seconds: float = 300.0) -> None:
        """`scrapes` None: checkpoints name the last processed event (no alignment)."""
        self.interval = interval
        self.every_events = every_events
        self.scrapes = scrapes
        self.no_scrape_seconds = no_scrape_seconds

    def due(self, progress: PartitionProgress, now: float, final: bool = False,
            limit: Position | None = None) -> CheckpointTarget | None:
        """The checkpoint to write now, or None. `limit`: the last event another rule lets a checkpoint
        name (e.g. the one before the first event whose dead letter is not written yet); the target is
        then the earlier of the two."""
        target = self._target(progress, now, final)
        if target is None or limit is None or limit.count >= target.position.count:
            return target
        if limit.count <= progress.saved_count:
            return None
        scraped = progress.scraped
        return CheckpointTarget(limit, unscraped=target.unscraped and (scraped is None or scraped.count < limit.count))

    def _target(self, progress: PartitionProgress, now: float, final: bool) -> CheckpointTarget | None:
        latest = progress.position()
        if latest is None or progress.unsaved_events <= 0:
            return None
        if not final:
            since_attempt = now - progress.last_attempt
            if progress.failures_in_a_row:
                if since_attempt < self.interval:
                    return None
            elif progress.unsaved_events < self.every_events and since_attempt < self.interval:
                return None
        if self.scrapes is None:
            return CheckpointTarget(latest)
        scraped = progress.scraped
        if self.scrapes.silent_for(now) >= self.no_scrape_seconds:
            return CheckpointTarget(latest, unscraped=scraped is None or scraped.count < latest.count)
        if scraped is None or scraped.count <= progress.saved_count:
            return None
        return CheckpointTarget(scraped)

    @staticmethod
    def attempted(progress: PartitionProgress, now: float, ok: bool, target: CheckpointTarget) -> None:
        """Record a write of `target`. Events processed after it (while the write was in flight, or
        not yet scraped) stay unsaved."""
        progress.last_attempt = now
        if ok:
            progress.failures_in_a_row = 0
            if target.position.count > progress.saved_count:
                progress.saved_sequence_number = target.sequence_number
                progress.saved_count = target.position.count
        else:
            progress.failures_in_a_row += 1
