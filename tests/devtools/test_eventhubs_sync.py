"""The local Event Hubs endpoint against the real synchronous azure-eventhub SDK (no mocks)."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import ConnectionLostError, EventHubError

from acs_sms_devtools.eventhubs import EventHubsEndpoint
from eventhubs_helpers import SyncReceiver, close_all, receive_sync, wait_until


def producer(endpoint: EventHubsEndpoint) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(endpoint.connection_string)


def send(endpoint: EventHubsEndpoint, bodies: list[str], **batch_kwargs: object) -> None:
    with producer(endpoint) as client:
        batch = client.create_batch(**batch_kwargs)  # type: ignore[arg-type]
        for body in bodies:
            batch.add(EventData(body))
        client.send_batch(batch)


def test_connection_string_targets_the_endpoint_port(eventhubs: EventHubsEndpoint) -> None:
    assert eventhubs.connection_string == (
        f"Endpoint=sb://127.0.0.1:{eventhubs.port};SharedAccessKeyName=k;SharedAccessKey=v;"
        "EntityPath=eventhub;UseDevelopmentEmulator=true"
    )
    assert eventhubs.port > 0


def test_hub_and_partition_properties(eventhubs: EventHubsEndpoint) -> None:
    with producer(eventhubs) as client:
        hub = client.get_eventhub_properties()
        assert hub["eventhub_name"] == "eventhub"
        assert hub["partition_ids"] == ["0", "1", "2", "3"]
        assert isinstance(hub["created_at"], dt.datetime)
        empty = client.get_partition_properties("2")
        assert empty["is_empty"] is True
        assert empty["last_enqueued_sequence_number"] == -1
        assert empty["last_enqueued_offset"] == "-1"
        before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
        batch = client.create_batch(partition_id="2")
        for i in range(3):
            batch.add(EventData(f"e{i}"))
        client.send_batch(batch)
        props = client.get_partition_properties("2")
    assert props["id"] == "2"
    assert props["is_empty"] is False
    assert props["beginning_sequence_number"] == 0
    assert props["last_enqueued_sequence_number"] == 2
    assert int(props["last_enqueued_offset"]) > 0
    assert props["last_enqueued_time_utc"] >= before


def test_partition_count_and_hub_name_are_configurable(eventhubs_factory) -> None:
    endpoint = eventhubs_factory(hub="other", partitions=2, consumer_groups=["cg1"])
    with producer(endpoint) as client:
        assert client.get_partition_ids() == ["0", "1"]
        assert client.eventhub_name == "other"


def test_send_to_partition_and_receive_preserves_event(eventhubs: EventHubsEndpoint) -> None:
    with producer(eventhubs) as client:
        batch = client.create_batch(partition_id="1")
        for i in range(5):
            event = EventData(f'{{"n": {i}}}')
            event.properties = {"kind": "sms", "n": i}
            event.content_type = "application/json"
            event.correlation_id = f"corr-{i}"
            batch.add(event)
        client.send_batch(batch)
    assert eventhubs.event_counts() == {"0": 0, "1": 5, "2": 0, "3": 0}

    events = receive_sync(eventhubs.connection_string, 5, partition_id="1", starting_position="-1")
    assert [e.body_as_str() for e in events] == [f'{{"n": {i}}}' for i in range(5)]
    assert [e.sequence_number for e in events] == [0, 1, 2, 3, 4]
    offsets = [int(e.offset) for e in events]
    assert offsets == sorted(set(offsets)) and offsets[0] == 0
    assert all(isinstance(e.offset, str) for e in events)
    assert [e.properties[b"kind"] for e in events] == [b"sms"] * 5
    assert [e.properties[b"n"] for e in events] == list(range(5))
    assert events[0].content_type == "application/json"
    assert events[3].correlation_id == "corr-3"
    now = dt.datetime.now(dt.timezone.utc)
    assert all(now - dt.timedelta(seconds=30) < e.enqueued_time <= now for e in events)
    assert events[0].system_properties[b"x-opt-sequence-number"] == 0


def test_partition_key_routes_consistently(eventhubs: EventHubsEndpoint) -> None:
    for _ in range(3):
        send(eventhubs, ["a", "b"], partition_key="customer-42")
    counts = eventhubs.event_counts()
    assert sorted(counts.values()) == [0, 0, 0, 6]
    partition = next(pid for pid, n in counts.items() if n)
    events = receive_sync(eventhubs.connection_string, 6, partition_id=partition, starting_position="-1")
    assert [e.partition_key for e in events] == [b"customer-42"] * 6


def test_round_robin_without_partition_key(eventhubs: EventHubsEndpoint) -> None:
    for i in range(4):
        send(eventhubs, [f"batch{i}-a", f"batch{i}-b"])
    assert eventhubs.event_counts() == {"0": 2, "1": 2, "2": 2, "3": 2}


def test_send_event_single_message(eventhubs: EventHubsEndpoint) -> None:
    with producer(eventhubs) as client:
        client.send_event(EventData("single"), partition_id="3")
    events = receive_sync(eventhubs.connection_string, 1, partition_id="3", starting_position="-1")
    assert [e.body_as_str() for e in events] == ["single"]


def test_large_event_is_split_into_several_frames(eventhubs: EventHubsEndpoint) -> None:
    body = b"x" * 1_040_000  # larger than one 1 MiB frame with its headers: sent and delivered in pieces
    with producer(eventhubs) as client:
        batch = client.create_batch(partition_id="0")
        batch.add(EventData(body))
        client.send_batch(batch)
    events = receive_sync(eventhubs.connection_string, 1, partition_id="0", starting_position="-1")
    assert len(events) == 1 and events[0].body_as_str() == body.decode()


@pytest.fixture
def ten_events(eventhubs: EventHubsEndpoint) -> list[dict[str, object]]:
    """Ten events in partition 0, stored in two groups 30 ms apart; their system properties."""
    eventhubs.publish("0", [f"e{i}".encode() for i in range(5)])
    time.sleep(0.03)
    eventhubs.publish("0", [f"e{i}".encode() for i in range(5, 10)])
    return [
        {
            "sequence_number": m.message_annotations[b"x-opt-sequence-number"],
            "offset": m.message_annotations[b"x-opt-offset"].decode(),
            "enqueued_time": dt.datetime.fromtimestamp(
                m.message_annotations[b"x-opt-enqueued-time"] / 1000, dt.timezone.utc
            ),
        }
        for m in eventhubs.events("0")
    ]


@pytest.mark.parametrize("eventhubs", [{"consumer_groups": ["second"]}], indirect=True)
def test_start_filters(eventhubs: EventHubsEndpoint, ten_events: list[dict[str, object]]) -> None:
    """Sequence number, offset and enqueued time, exclusive and inclusive, and the earliest position."""
    third, fifth = ten_events[3], ten_events[5]
    assert ten_events[4]["enqueued_time"] < fifth["enqueued_time"]
    cases = [
        (third["sequence_number"], False, 4),
        (third["sequence_number"], True, 3),
        (third["offset"], False, 4),
        (third["offset"], True, 3),
        (ten_events[4]["enqueued_time"], False, 5),
        (fifth["enqueued_time"], True, 5),
        ("-1", False, 0),
    ]
    # at most 5 non-exclusive receivers per partition and consumer group, as in the service
    receivers = [
        SyncReceiver(eventhubs.connection_string, consumer_group="$Default" if n < 4 else "second",
                     partition_id="0", starting_position=start, starting_position_inclusive=inclusive).start()
        for n, (start, inclusive, _) in enumerate(cases)
    ]
    try:
        for receiver, (_, _, first) in zip(receivers, cases):
            receiver.wait_for(10 - first)
        time.sleep(0.1)
    finally:
        close_all(receivers)
    for receiver, (start, inclusive, first) in zip(receivers, cases):
        got = [e.body_as_str() for e in receiver.events]
        assert got == [f"e{i}" for i in range(first, 10)], (start, inclusive, receiver.errors)
        assert [e.sequence_number for e in receiver.events] == list(range(first, 10))
    assert [e.offset for e in receivers[-1].events] == [e["offset"] for e in ten_events]


def test_start_filter_latest(eventhubs, ten_events) -> None:
    with SyncReceiver(eventhubs.connection_string, partition_id="0", starting_position="@latest") as receiver:
        assert wait_until(lambda: eventhubs.active_receivers() == 1)
        send(eventhubs, ["new"], partition_id="0")
        events = receiver.wait_for(1)
        time.sleep(0.2)
    assert [e.body_as_str() for e in receiver.events] == ["new"]
    assert events[0].sequence_number == 10


def test_last_enqueued_event_properties(eventhubs: EventHubsEndpoint) -> None:
    send(eventhubs, ["a", "b", "c"], partition_id="0")
    with SyncReceiver(
        eventhubs.connection_string, partition_id="0", starting_position="-1", track_last_enqueued_event_properties=True
    ) as receiver:
        receiver.wait_for(3)
        props = receiver.contexts[-1].last_enqueued_event_properties
    assert props["sequence_number"] == 2
    assert props["offset"] == receiver.events[-1].offset
    assert props["enqueued_time"] == receiver.events[-1].enqueued_time
    assert isinstance(props["retrieval_time"], dt.datetime)


def test_new_events_are_pushed_promptly(eventhubs: EventHubsEndpoint) -> None:
    with SyncReceiver(eventhubs.connection_string, partition_id="0", starting_position="-1") as receiver:
        assert wait_until(lambda: eventhubs.active_receivers() == 1)
        with producer(eventhubs) as client:
            client.send_batch([EventData("warm-up")], partition_id="0")  # opens the send link
            assert wait_until(lambda: len(receiver.events) == 1)
            latencies = []
            for i in range(5):
                started = time.monotonic()
                client.send_batch([EventData(f"p{i}")], partition_id="0")
                assert wait_until(lambda: len(receiver.events) == i + 2, timeout=5, interval=0.001)
                latencies.append(time.monotonic() - started)
    # Measured 0.20-0.21 s each (the sync SDK's receive loop paces itself); the bound is 5x that, so
    # an endpoint that polled its partitions every second or more would fail, a busy machine would not.
    print(f"\npush latencies {[round(t, 3) for t in latencies]} s")
    assert max(latencies) < 1.0, latencies


def test_higher_owner_level_steals_and_lower_is_refused(eventhubs: EventHubsEndpoint) -> None:
    cs = eventhubs.connection_string
    with SyncReceiver(cs, partition_id="0", owner_level=1, starting_position="-1") as old:
        assert wait_until(lambda: eventhubs.active_receivers() == 1)
        with SyncReceiver(cs, partition_id="0", owner_level=2, starting_position="-1") as new:
            assert wait_until(lambda: bool(old.errors))
            error = old.errors[0]
            assert isinstance(error, ConnectionLostError)
            assert error.error == "link:stolen"  # the SDK keeps what follows "amqp:"
            assert "higher epoch" in str(error)
            assert eventhubs.active_receivers() == 1
            send(eventhubs, ["x"], partition_id="0")
            assert [e.body_as_str() for e in new.wait_for(1)] == ["x"]
            with SyncReceiver(cs, partition_id="0", owner_level=1, starting_position="-1") as lower:
                assert wait_until(lambda: bool(lower.errors))
                assert lower.errors[0].error == "link:stolen"
                assert lower.events == []
            assert new.errors == []


def test_non_epoch_receivers_coexist_up_to_five(eventhubs: EventHubsEndpoint) -> None:
    cs = eventhubs.connection_string
    receivers = [SyncReceiver(cs, partition_id="1", starting_position="-1").start() for _ in range(5)]
    try:
        assert wait_until(lambda: eventhubs.active_receivers(partition_id="1") == 5)
        sixth = SyncReceiver(cs, partition_id="1", starting_position="-1", client_options={"retry_total": 0}).start()
        try:
            assert wait_until(lambda: bool(sixth.errors))
            assert isinstance(sixth.errors[0], EventHubError)
            assert sixth.errors[0].error == "resource-limit-exceeded"
        finally:
            sixth.close()
        send(eventhubs, ["shared"], partition_id="1")
        for receiver in receivers:
            assert [e.body_as_str() for e in receiver.wait_for(1)] == ["shared"]
        assert eventhubs.active_receivers("$default", "1") == 5
    finally:
        close_all(receivers)
    assert wait_until(lambda: eventhubs.active_receivers() == 0)


def test_drop_connections_client_reconnects_and_resumes(eventhubs: EventHubsEndpoint) -> None:
    with producer(eventhubs) as client, SyncReceiver(
        eventhubs.connection_string, partition_id="0", starting_position="-1"
    ) as receiver:
        client.send_batch([EventData(f"a{i}") for i in range(5)], partition_id="0")
        receiver.wait_for(5)
        assert eventhubs.drop_connections() >= 2
        client.send_batch([EventData(f"b{i}") for i in range(5)], partition_id="0")
        events = receiver.wait_for(10)
        time.sleep(0.2)
    bodies = [e.body_as_str() for e in receiver.events]
    assert bodies == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert [e.sequence_number for e in events] == list(range(10))


def test_restart_keeps_data_on_the_same_port(eventhubs: EventHubsEndpoint) -> None:
    port = eventhubs.port
    send(eventhubs, ["before"], partition_id="2")
    with producer(eventhubs) as client:
        client.get_partition_ids()
        eventhubs.restart(keep_data=True)
        assert eventhubs.port == port
        client.send_batch([EventData("after")], partition_id="2")  # the same client reconnects
    events = receive_sync(eventhubs.connection_string, 2, partition_id="2", starting_position="-1")
    assert [(e.body_as_str(), e.sequence_number) for e in events] == [("before", 0), ("after", 1)]


def test_restart_without_data_and_stop_start(eventhubs: EventHubsEndpoint) -> None:
    send(eventhubs, ["gone"], partition_id="0")
    eventhubs.restart(keep_data=False)
    assert eventhubs.event_count() == 0
    eventhubs.stop()
    assert not eventhubs.running
    with pytest.raises(Exception):
        with EventHubProducerClient.from_connection_string(eventhubs.connection_string, retry_total=0) as client:
            client.get_partition_ids()
    eventhubs.start()
    with producer(eventhubs) as client:
        assert client.get_partition_properties("0")["is_empty"] is True


def test_retention_cap_drops_oldest(eventhubs_factory) -> None:
    endpoint = eventhubs_factory(partitions=1, max_events_per_partition=10)
    assert endpoint.publish("0", [f"n{i}".encode() for i in range(25)]) == 25
    assert endpoint.event_counts() == {"0": 10}
    with producer(endpoint) as client:
        props = client.get_partition_properties("0")
    assert props["beginning_sequence_number"] == 15
    assert props["last_enqueued_sequence_number"] == 24
    events = receive_sync(endpoint.connection_string, 10, partition_id="0", starting_position="-1")
    assert [e.body_as_str() for e in events] == [f"n{i}" for i in range(15, 25)]


def test_consumer_groups(eventhubs_factory) -> None:
    endpoint = eventhubs_factory(consumer_groups=["analytics"])
    endpoint.publish("0", [b"one"])
    for group in ("$Default", "analytics"):
        events = receive_sync(endpoint.connection_string, 1, consumer_group=group, partition_id="0",
                              starting_position="-1")
        assert [e.body_as_str() for e in events] == ["one"]
    with SyncReceiver(
        endpoint.connection_string, consumer_group="missing", partition_id="0", client_options={"retry_total": 0}
    ) as receiver:
        assert wait_until(lambda: bool(receiver.errors))
    assert "could not be found" in str(receiver.errors[0])


def test_load_balanced_receive_over_all_partitions(eventhubs: EventHubsEndpoint) -> None:
    for pid in eventhubs.partition_ids:
        eventhubs.publish(pid, [f"p{pid}".encode()])
    client = EventHubConsumerClient.from_connection_string(eventhubs.connection_string, consumer_group="$Default")
    with SyncReceiver(eventhubs.connection_string, starting_position="-1") as receiver:
        events = receiver.wait_for(4, timeout=20)
    client.close()
    assert sorted(e.body_as_str() for e in events) == ["p0", "p1", "p2", "p3"]
