"""consumer.progress: lag and stall tracking, pure and clock-injected; and, through the receiver, one
lag rule behind both the `acs_consumer_partition_lag_events` metric and the progress log line."""

from __future__ import annotations

import asyncio

import pytest
from azure.eventhub import CloseReason

from consumer.app import progress_fields
from consumer.progress import Stall, StallTracker, partition_lag
from tests.test_eventhub import GOOD, FakeContext, hub_event, receiver_with


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("last", "processed", "lag"), [
    (9, None, 10),  # nothing processed: every event up to the last one waits
    (9, 4, 5),
    (9, 9, 0),
    (3, 9, 0),  # a read older than what was processed: never negative
])
def test_partition_lag(last: int, processed: int | None, lag: int) -> None:
    assert partition_lag(last, processed) == lag


def test_a_read_older_than_one_seen_never_moves_the_last_enqueued_back() -> None:
    stall = Stall(0.0)
    assert stall.lag(None) is None  # not known yet
    stall.enqueued(9)
    stall.enqueued(3)
    assert stall.last_enqueued == 9 and stall.lag(4) == 5


def test_stalled_only_while_events_wait() -> None:
    stall = Stall(100.0)
    assert stall.seconds(None, busy=False, now=130) == 0.0  # nothing known to wait
    assert stall.seconds(None, busy=True, now=130) == 30.0  # a batch in hand
    stall.enqueued(5)
    assert stall.seconds(None, busy=False, now=130) == 30.0  # nothing processed, the hub holds 0..5
    assert stall.seconds(4, busy=False, now=130) == 30.0
    assert stall.seconds(5, busy=False, now=130) == 0.0  # caught up
    assert stall.seconds(4, busy=False, now=90) == 0.0  # never negative


def test_a_partition_an_error_closed_keeps_its_stall_when_claimed_again_soon() -> None:
    clock = Clock()
    tracker = StallTracker(recent=60, clock=clock)
    stall = tracker.claimed("0")
    assert stall.advanced_at == 1000
    clock.now = 1010
    tracker.failed("0", stall)
    clock.now = 1020
    tracker.released("0", stall)
    clock.now = 1080  # 60 s after the close: still recent
    assert tracker.claimed("0").advanced_at == 1000
    clock.now = 1200  # claimed and closed without an error since: starts afresh
    tracker.released("0", Stall(1100))
    assert tracker.claimed("0").advanced_at == 1200


def test_a_partition_claimed_again_long_after_an_error_starts_afresh() -> None:
    clock = Clock()
    tracker = StallTracker(recent=60, clock=clock)
    stall = tracker.claimed("0")
    tracker.failed("0", stall)
    tracker.released("0", stall)
    clock.now = 1061
    assert tracker.claimed("0").advanced_at == 1061


def test_an_error_for_a_partition_not_owned_starts_no_stall() -> None:
    clock = Clock()
    tracker = StallTracker(recent=60, clock=clock)
    tracker.failed("0", None)
    tracker.released("0", None)
    clock.now = 1005
    assert tracker.claimed("0").advanced_at == 1005


# --- one lag rule: the metric and the progress log line agree --------------------------------------

def lag_samples(metrics) -> dict[str, int]:
    return {s.labels["partition"]: int(s.value) for f in metrics.registry.collect()
            if f.name == "acs_consumer_partition_lag_events" for s in f.samples}


def test_the_lag_metric_and_the_progress_log_agree() -> None:
    receiver, metrics, _ = receiver_with()
    behind, fresh, idle = FakeContext("0", last_enqueued=9), FakeContext("1", last_enqueued=4), FakeContext("2", 0)
    idle.last_enqueued_event_properties = {}

    class Client:
        async def get_partition_properties(self, partition: str) -> dict[str, int]:
            return {"last_enqueued_sequence_number": 12}

    async def scenario() -> None:
        for context in (behind, fresh, idle):
            await receiver._on_initialize(context)
        await receiver._on_batch(behind, [hub_event(GOOD, n) for n in range(3)])  # processed 0..2 of 0..9
        await receiver._on_batch(fresh, [])  # nothing processed: 0..4 wait
        assert lag_samples(metrics) == {"0": 7, "1": 5}
        assert progress_fields(receiver, 1.0, 0, 0)["lag_events"] == lag_samples(metrics)
        receiver.client = Client()
        await receiver._read_last_enqueued()  # the probe reads a newer last event of "0"
        assert lag_samples(metrics) == {"0": 10, "1": 5}
        assert progress_fields(receiver, 1.0, 0, 0)["lag_events"] == lag_samples(metrics)
        await receiver._on_close(behind, CloseReason.SHUTDOWN)
        assert progress_fields(receiver, 1.0, 0, 0)["lag_events"] == lag_samples(metrics) == {"1": 5}

    asyncio.run(scenario())
