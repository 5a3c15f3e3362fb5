"""consumer.readiness: the /readyz checks other than Event Hubs' own (clock-injected), and the
`eventhub` check before the receive loop runs."""

from __future__ import annotations

from consumer.readiness import EventHubsReadiness, StoreReadiness, eventhub_check, partitions_check, shutdown_check
from tests.test_readiness import Clock


def test_the_checkpoint_store_is_ready_while_it_answered_recently() -> None:
    clock = Clock()
    store = StoreReadiness(60, clock)
    assert store.check("creating the blob containers") == (
        False, "checkpoint store has not answered yet (start-up: creating the blob containers)")
    assert store.check() == (False, "checkpoint store has not answered yet")
    store.answered()
    clock.now += 60
    assert store.check() == (True, "checkpoint store answered 60 s ago")
    clock.now += 1
    assert store.check() == (False, "checkpoint store last answered 61 s ago (limit 60 s)")


def test_partitions_stalled_past_the_limit_are_named() -> None:
    assert partitions_check({"0": 0.0, "1": 30.0}, 30) == (True, "2 owned partitions progressing or idle")
    assert partitions_check({"3": 31.0, "0": 0.0, "1": 45.0}, 30) == (
        False, "no progress while events wait on partition 1 (45 s), 3 (31 s) (limit 30 s)")


def test_the_eventhub_check_says_what_start_up_waits_for() -> None:
    clock = Clock()
    hub = EventHubsReadiness(60, clock)
    hub.hub_answered()
    assert eventhub_check(True, None, hub) == (True, "Event Hubs answered 0 s ago")
    assert eventhub_check(False, "creating the blob containers", hub) == (
        False, "not receiving yet (start-up: creating the blob containers); Event Hubs: Event Hubs answered 0 s ago")
    assert eventhub_check(False, None, hub) == (False, "not receiving")


def test_shutdown_fails_readiness() -> None:
    assert shutdown_check(False) == (True, "not shutting down")
    assert shutdown_check(True)[0] is False
