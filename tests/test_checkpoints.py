"""The checkpoint policy (consumer/checkpoints.py): pure, clock-injected, no storage."""

from __future__ import annotations

from consumer.checkpoints import CheckpointPolicy, PartitionProgress

INTERVAL = 10.0
EVERY = 1000


def progress_with(events: int, started: float = 100.0) -> PartitionProgress:
    progress = PartitionProgress("0", last_attempt=started)
    for sequence_number in range(events):
        progress.processed(object(), sequence_number)
    return progress


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
    policy.attempted(progress, 111.0, ok=True, sequence_number=4)
    assert (progress.saved_sequence_number, progress.unsaved_events, progress.last_attempt) == (4, 0, 111.0)
    assert not policy.due(progress, 200.0, final=True)  # nothing unsaved
    progress.processed(object(), 5)
    assert not policy.due(progress, 111.0 + INTERVAL - 0.001)
    assert policy.due(progress, 111.0 + INTERVAL)


def test_events_processed_while_a_write_was_in_flight_stay_unsaved():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(5)
    progress.processed(object(), 5)  # after the write named sequence number 4
    policy.attempted(progress, 111.0, ok=True, sequence_number=4)
    assert progress.saved_sequence_number == 4
    assert progress.unsaved_events > 0
    assert policy.due(progress, 111.0, final=True)


def test_a_failed_write_is_retried_after_the_interval_not_at_every_batch():
    policy = CheckpointPolicy(INTERVAL, EVERY)
    progress = progress_with(EVERY)
    policy.attempted(progress, 111.0, ok=False, sequence_number=EVERY - 1)
    assert progress.failures_in_a_row == 1
    assert progress.saved_sequence_number is None
    assert progress.unsaved_events == EVERY
    for _ in range(EVERY):  # far past every_events: still waits for the interval while failing
        progress.processed(object(), EVERY)
    assert not policy.due(progress, 111.0 + INTERVAL - 0.001)
    assert policy.due(progress, 111.0 + INTERVAL)
    assert policy.due(progress, 111.5, final=True)  # the close still tries
    policy.attempted(progress, 125.0, ok=False, sequence_number=2 * EVERY - 1)
    assert progress.failures_in_a_row == 2
    policy.attempted(progress, 140.0, ok=True, sequence_number=progress.last_sequence_number)
    assert (progress.failures_in_a_row, progress.unsaved_events) == (0, 0)
