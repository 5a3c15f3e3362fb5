"""consumer.readiness: ready when Event Hubs answers, not while every attempt fails (clock-injected)."""

from __future__ import annotations

from consumer.readiness import EventHubsReadiness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(max_age: float = 60) -> tuple[EventHubsReadiness, Clock]:
    clock = Clock()
    return EventHubsReadiness(max_age, clock), clock


def test_not_ready_until_event_hubs_answers():
    ready, _ = tracker()
    assert ready.check() == (False, "starting: no Event Hubs operation has completed yet")
    ready.hub_answered()
    assert ready.check() == (True, "Event Hubs answered 0 s ago")


def test_a_hub_that_never_answers_names_the_kind_and_reason():
    ready, clock = tracker()
    ready.hub_failed("unreachable", "Failed to initiate the connection")
    clock.now += 12
    assert ready.check() == (False, "unreachable: Event Hubs does not answer, last error 12 s ago: "
                                    "Failed to initiate the connection")
    ready.hub_failed("unauthorized")
    assert ready.check() == (False, "unauthorized: Event Hubs does not answer, last error 0 s ago")
    ready.hub_answered()  # fixed without a restart
    assert ready.check()[0]


def test_every_partition_failing_is_not_ready_although_the_hub_answers():
    # A wrong consumer group: the partition ids are read, but no receive link opens.
    ready, clock = tracker()
    ready.hub_answered()
    ready.partition_failed("0", "entity_not_found", "The consumer group 'x' could not be found.")
    clock.now += 3
    ready.partition_failed("1", "entity_not_found", "The consumer group 'x' could not be found.")
    ready.hub_answered()
    assert ready.check() == (False, "entity_not_found: receiving fails on every partition it tried, last error 0 s "
                                    "ago: The consumer group 'x' could not be found.")


def test_events_on_one_partition_are_ready_whatever_failed_elsewhere():
    ready, clock = tracker()
    ready.partition_failed("0", "connection_lost")
    ready.hub_failed("unreachable")
    ready.received("1")
    assert ready.check() == (True, "receiving (partitions 1)")
    ready.hub_failed("unreachable")  # the probe failed, events still arrive
    assert ready.check() == (True, "receiving (partitions 1)")
    clock.now += 5
    ready.received("0")  # partition 0 recovered
    assert ready.check() == (True, "receiving (partitions 0, 1)")
    ready.partition_failed("0", "connection_lost")  # its latest attempt failed again
    assert ready.check() == (True, "receiving (partitions 1)")


def test_a_stolen_partition_is_a_normal_rebalance():
    ready, _ = tracker()
    ready.hub_answered()
    ready.partition_failed("0", "partition_stolen")
    assert ready.check() == (True, "Event Hubs answered 0 s ago")


def test_outcomes_older_than_max_age_are_forgotten():
    ready, clock = tracker(max_age=30)
    ready.received("0")
    clock.now += 30
    assert ready.check()[0]
    clock.now += 1
    assert ready.check() == (False, "Event Hubs last answered 31 s ago (limit 30 s)")
    ready.hub_answered()
    ready.partition_failed("0", "connection_lost")  # on an idle hub: no events come to supersede it
    assert not ready.check()[0]
    clock.now += 31
    ready.hub_answered()  # the probe goes on answering
    assert ready.check() == (True, "Event Hubs answered 0 s ago")
    clock.now += 31
    assert ready.check() == (False, "Event Hubs last answered 31 s ago (limit 30 s)")
