"""The checkpoint policy (consumer/checkpoints.py): pure, clock-injected, no storage."""

from __future__ import annotations

from consumer.checkpoints import (
    CheckpointPolicy,
    CheckpointTarget,
    PartitionProgress,
    Position,
    Scrapes,
    awaiting_scrape,
)

INTERVAL = 10.0
EVERY = 1000


def progress_with(events: int, started: float = 100.0) -> PartitionProgress:
    progress = PartitionProgress("0", last_attempt=started)
    for sequence_number in range(events):
        progress.processed(object(), sequence_number)
    return progress


def at(progress: PartitionProgress, sequence_number: int) -> CheckpointTarget:
    """A target naming `sequence_number` (processed in order from 0 by `progress_with`)."""
    return CheckpointTarget(Position(sequence_number, object(), sequence_number + 1))


def test_nothing_processed_is_never_due_not_even_at_close():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(0)
    assert not policy.due(progress, 1e9)
    assert not policy.due(progress, 1e9, final=True)


def test_due_after_the_interval_or_every_n_events_whichever_first():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    few = progress_with(1)
    assert not policy.due(few, 100.0 + INTERVAL - 0.001)
    assert policy.due(few, 100.0 + INTERVAL)
    many = progress_with(EVERY)
    assert not policy.due(progress_with(EVERY - 1), 100.5)
    assert policy.due(many, 100.5)


def test_final_checkpoint_ignores_the_rate_limit():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(1)
    assert not policy.due(progress, 100.1)
    assert policy.due(progress, 100.1, final=True)


def test_success_saves_what_was_named_and_restarts_the_interval():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(5)
    policy.attempted(progress, 111.0, ok=True, target=at(progress, 4))
    assert (progress.saved_sequence_number, progress.unsaved_events, progress.last_attempt) == (4, 0, 111.0)
    assert not policy.due(progress, 200.0, final=True)  # nothing unsaved
    progress.processed(object(), 5)
    assert not policy.due(progress, 111.0 + INTERVAL - 0.001)
    assert policy.due(progress, 111.0 + INTERVAL)


def test_events_processed_while_a_write_was_in_flight_stay_unsaved():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(5)
    progress.processed(object(), 5)  # after the write named sequence number 4
    policy.attempted(progress, 111.0, ok=True, target=at(progress, 4))
    assert progress.saved_sequence_number == 4
    assert progress.unsaved_events > 0
    assert policy.due(progress, 111.0, final=True)


def test_a_failed_write_is_retried_after_the_interval_not_at_every_batch():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(EVERY)
    policy.attempted(progress, 111.0, ok=False, target=at(progress, EVERY - 1))
    assert progress.failures_in_a_row == 1
    assert progress.saved_sequence_number is None
    assert progress.unsaved_events == EVERY
    for _ in range(EVERY):  # far past every_events: still waits for the interval while failing
        progress.processed(object(), EVERY)
    assert not policy.due(progress, 111.0 + INTERVAL - 0.001)
    assert policy.due(progress, 111.0 + INTERVAL)
    assert policy.due(progress, 111.5, final=True)  # the close still tries
    policy.attempted(progress, 125.0, ok=False, target=at(progress, 2 * EVERY - 1))
    assert progress.failures_in_a_row == 2
    policy.attempted(progress, 140.0, ok=True, target=policy.due(progress, 140.0))
    assert (progress.failures_in_a_row, progress.unsaved_events) == (0, 0)


# --- scrape alignment ---------------------------------------------------------------------------

NO_SCRAPE = 300.0


def aligned(started: float = 100.0) -> tuple[CheckpointPolicy, Scrapes]:
    scrapes = Scrapes(started)
    return CheckpointPolicy(INTERVAL, EVERY, scrapes, NO_SCRAPE), scrapes


def scrape(scrapes: Scrapes, now: float, *partitions: PartitionProgress) -> None:
    scrapes.completed(scrapes.started(partitions), now)


def test_aligned_nothing_is_checkpointed_before_a_scrape_not_even_at_close():
    policy, _ = aligned()
    progress = progress_with(2 * EVERY)
    assert policy.due(progress, 100.0 + INTERVAL) is None
    assert policy.due(progress, 100.0 + INTERVAL, final=True) is None


def test_aligned_checkpoint_names_the_last_event_processed_before_the_render_started():
    policy, scrapes = aligned()
    progress = progress_with(5)  # sequence numbers 0..4
    snapshot = scrapes.started([progress])
    progress.processed(object(), 5)  # counted while the response was being written: not in that render
    progress.processed(object(), 6)
    assert policy.due(progress, 100.0 + INTERVAL) is None  # started, not completed
    scrapes.completed(snapshot, 101.0)
    target = policy.due(progress, 100.0 + INTERVAL)
    assert target is not None and (target.sequence_number, target.position.count, target.unscraped) == (4, 5, False)
    policy.attempted(progress, 111.0, ok=True, target=target)
    assert (progress.saved_sequence_number, progress.unsaved_events) == (4, 2)
    # Nothing newer scraped: no checkpoint, not even the final one, though events are unsaved.
    assert policy.due(progress, 200.0) is None
    assert policy.due(progress, 200.0, final=True) is None
    scrape(scrapes, 201.0, progress)
    assert policy.due(progress, 201.0, final=True).sequence_number == 6


def test_aligned_checkpoint_follows_the_rate_limit_and_the_scraped_mark():
    policy, scrapes = aligned()
    progress = progress_with(3)
    scrape(scrapes, 102.0, progress)
    assert policy.due(progress, 105.0) is None  # scraped, but the interval has not passed
    assert policy.due(progress, 105.0, final=True).sequence_number == 2
    assert policy.due(progress, 100.0 + INTERVAL).sequence_number == 2
    for sequence_number in range(3, EVERY + 3):
        progress.processed(object(), sequence_number)
    assert policy.due(progress, 105.0).sequence_number == 2  # every_events unsaved: due, up to the scrape


def test_overlapping_scrapes_finishing_out_of_order_never_move_the_mark_back():
    policy, scrapes = aligned()
    progress = progress_with(3)
    early = scrapes.started([progress])
    progress.processed(object(), 3)
    late = scrapes.started([progress])
    scrapes.completed(late, 101.0)
    scrapes.completed(early, 102.0)
    assert progress.scraped.sequence_number == 3
    assert policy.due(progress, 100.0, final=True).sequence_number == 3


def test_a_partition_claimed_after_the_render_started_is_not_in_that_scrape():
    policy, scrapes = aligned()
    old = progress_with(3)
    snapshot = scrapes.started([old])
    new = progress_with(3)
    scrapes.completed(snapshot, 101.0)
    assert policy.due(old, 101.0, final=True).sequence_number == 2
    assert policy.due(new, 101.0, final=True) is None


def test_without_a_scrape_for_no_scrape_seconds_checkpoints_go_on_and_say_so():
    policy, scrapes = aligned(started=100.0)
    progress = progress_with(5)
    # Silence counts from start-up when there was no scrape at all.
    assert policy.due(progress, 100.0 + NO_SCRAPE - 0.001) is None
    target = policy.due(progress, 100.0 + NO_SCRAPE)
    assert target is not None and (target.sequence_number, target.unscraped) == (4, True)
    assert scrapes.silence_began() is True  # the first unscraped checkpoint of the episode: logged
    policy.attempted(progress, 400.0, ok=True, target=target)
    progress.processed(object(), 5)
    later = policy.due(progress, 400.0 + INTERVAL)
    assert (later.sequence_number, later.unscraped) == (5, True)
    assert scrapes.silence_began() is False  # same episode: not logged again
    # A scrape ends the episode and says how long it was; alignment is back at once.
    assert scrapes.completed(scrapes.started([progress]), 450.0) == 350.0
    progress.processed(object(), 6)
    assert policy.due(progress, 450.0 + INTERVAL).sequence_number == 5
    assert policy.due(progress, 450.0 + INTERVAL).unscraped is False
    # A scrape that ends no episode returns None; a later silence is a new episode.
    assert scrapes.completed(scrapes.started([progress]), 460.0) is None
    assert policy.due(progress, 460.0 + NO_SCRAPE).unscraped is False  # the latest event is the scraped one
    progress.processed(object(), 7)
    target = policy.due(progress, 460.0 + NO_SCRAPE)
    assert (target.sequence_number, target.unscraped) == (7, True)
    assert scrapes.silence_began() is True


def test_alignment_off_names_the_last_processed_event_whatever_the_scrapes():
    scrapes = Scrapes(100.0)
    policy = CheckpointPolicy(INTERVAL, EVERY, None, NO_SCRAPE)
    progress = progress_with(5)
    target = policy.due(progress, 100.0 + INTERVAL)
    assert (target.sequence_number, target.unscraped) == (4, False)
    assert scrapes.silent_for(150.0) == 50.0


def test_awaiting_scrape_is_what_a_final_checkpoint_would_leave_to_the_next_owner():
    policy, scrapes = aligned()
    progress = PartitionProgress("0")
    assert not awaiting_scrape(progress)  # nothing counted
    for sequence_number in range(3):
        progress.processed(object(), sequence_number)
    assert awaiting_scrape(progress)
    scrape(scrapes, 101.0, progress)
    assert not awaiting_scrape(progress)
    progress.processed(object(), 3)
    assert awaiting_scrape(progress)
    # An unscraped checkpoint (Prometheus silent) already names it: nothing to wait for.
    policy.attempted(progress, 500.0, ok=True, target=policy.due(progress, 101.0 + NO_SCRAPE))
    assert progress.saved_sequence_number == 3
    assert not awaiting_scrape(progress)


def test_replay_after_a_crash_is_at_most_one_checkpoint_interval_plus_one_scrape_interval():
    """One event a second, a checkpoint considered after each (as after each batch), a scrape every
    `scrape_every` s: at every second, the events a crash would replay (counted, not checkpointed)."""
    for scrape_every, interval, phase in [(30, 10, 0), (30, 10, 7), (15, 10, 3), (10, 30, 4), (5, 5, 2)]:
        scrapes = Scrapes(0.0)
        policy = CheckpointPolicy(interval, 10**9, scrapes, 10**9)
        progress = PartitionProgress("0")
        worst = 0
        for second in range(1, 600):
            progress.processed(object(), second - 1)
            if (second + phase) % scrape_every == 0:
                scrape(scrapes, float(second), progress)
            target = policy.due(progress, float(second))
            if target is not None:
                policy.attempted(progress, float(second), ok=True, target=target)
            worst = max(worst, progress.unsaved_events)
        assert scrape_every - 1 <= worst <= interval + scrape_every, (scrape_every, interval, phase, worst)


def test_another_limit_makes_the_checkpoint_the_earlier_of_the_two():
    policy, scrapes = aligned()
    progress = progress_with(10)  # 0..9
    scrape(scrapes, 101.0, progress)  # scraped up to 9
    limit = Position(6, object(), 7)  # e.g. a dead letter of event 7 not written yet
    target = policy.due(progress, 100.0 + INTERVAL, limit=limit)
    assert (target.sequence_number, target.unscraped) == (6, False)
    assert policy.due(progress, 100.0 + INTERVAL, limit=Position(12, object(), 13)).sequence_number == 9
    policy.attempted(progress, 111.0, ok=True, target=target)
    assert policy.due(progress, 200.0, final=True, limit=limit) is None  # nothing saved beyond it yet
    # Prometheus silent: the limit still holds; the target is unscraped only past the scraped mark.
    for sequence_number in range(10, 20):
        progress.processed(object(), sequence_number)
    silent = 101.0 + NO_SCRAPE
    target = policy.due(progress, silent, limit=Position(15, object(), 16))
    assert (target.sequence_number, target.unscraped) == (15, True)
    assert policy.due(progress, silent, limit=Position(8, object(), 9)).unscraped is False
