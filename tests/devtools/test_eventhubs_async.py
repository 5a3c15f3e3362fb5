"""The local Event Hubs endpoint against the real async azure-eventhub SDK (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import ConnectionLostError

from acs_sms_devtools.eventhubs import EventHubsEndpoint
from eventhubs_helpers import async_wait_until


class AsyncReceiver:
    """Runs ``EventHubConsumerClient.receive`` (aio) as a task and records events and errors."""

    def __init__(self, connection_string: str, *, consumer_group: str = "$Default",
                 client_options: dict[str, Any] | None = None, batch: bool = False, **receive_kwargs: Any) -> None:
        self.client = EventHubConsumerClient.from_connection_string(
            connection_string, consumer_group=consumer_group, **(client_options or {})
        )
        self.events: list[EventData] = []
        self.contexts: list[Any] = []
        self.errors: list[BaseException] = []
        self.batch = batch
        self.kwargs = receive_kwargs
        self.task: asyncio.Task[None] | None = None

    async def _on_event(self, context: Any, event: EventData | None) -> None:
        if event is not None:
            self.events.append(event)
            self.contexts.append(context)

    async def _on_batch(self, context: Any, events: list[EventData]) -> None:
        self.events.extend(events)
        self.contexts.extend([context] * len(events))

    async def _on_error(self, context: Any, error: BaseException) -> None:
        self.errors.append(error)

    async def __aenter__(self) -> "AsyncReceiver":
        if self.batch:
            coro = self.client.receive_batch(self._on_batch, on_error=self._on_error, **self.kwargs)
        else:
            coro = self.client.receive(self._on_event, on_error=self._on_error, **self.kwargs)
        self.task = asyncio.create_task(coro)
        return self

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[EventData]:
        await async_wait_until(lambda: len(self.events) >= count, timeout)
        return list(self.events)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.wait_for(self.client.close(), 15)
        assert self.task is not None
        # After close() the SDK's receive() still sleeps out its load-balancing interval: stop it.
        done, _ = await asyncio.wait({self.task}, timeout=0.05)
        if not done:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def send(endpoint: EventHubsEndpoint, bodies: list[str], **kwargs: Any) -> None:
    async with EventHubProducerClient.from_connection_string(endpoint.connection_string) as client:
        await client.send_batch([EventData(b) for b in bodies], **kwargs)


async def test_async_properties_and_round_trip(eventhubs: EventHubsEndpoint) -> None:
    async with EventHubProducerClient.from_connection_string(eventhubs.connection_string) as producer:
        props = await producer.get_eventhub_properties()
        assert props["partition_ids"] == ["0", "1", "2", "3"]
        batch = await producer.create_batch(partition_id="3")
        for i in range(20):
            event = EventData(f"async-{i}")
            event.properties = {"i": i}
            batch.add(event)
        await producer.send_batch(batch)
        partition = await producer.get_partition_properties("3")
        assert partition["last_enqueued_sequence_number"] == 19
    async with AsyncReceiver(eventhubs.connection_string, partition_id="3", starting_position="-1") as receiver:
        events = await receiver.wait_for(20)
    assert [e.body_as_str() for e in events] == [f"async-{i}" for i in range(20)]
    assert [e.properties[b"i"] for e in events] == list(range(20))
    assert [e.sequence_number for e in events] == list(range(20))


async def test_async_receive_batch_and_partition_key(eventhubs: EventHubsEndpoint) -> None:
    await send(eventhubs, [f"k{i}" for i in range(30)], partition_key="device-7")
    counts = eventhubs.event_counts()
    (partition,) = [pid for pid, n in counts.items() if n]
    async with AsyncReceiver(eventhubs.connection_string, batch=True, partition_id=partition,
                             starting_position="-1", max_batch_size=10) as receiver:
        events = await receiver.wait_for(30)
    assert [e.body_as_str() for e in events] == [f"k{i}" for i in range(30)]
    assert {e.partition_key for e in events} == {b"device-7"}


@pytest.mark.parametrize("eventhubs", [{"consumer_groups": ["second"]}], indirect=True)
async def test_async_start_positions(eventhubs: EventHubsEndpoint) -> None:
    eventhubs.publish("1", [b"0", b"1", b"2"])
    await asyncio.sleep(0.03)
    eventhubs.publish("1", [b"3", b"4", b"5"])
    stored = eventhubs.events("1")
    offset = stored[2].message_annotations[b"x-opt-offset"].decode()
    ms = stored[2].message_annotations[b"x-opt-enqueued-time"]
    time2 = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    cases: list[tuple[Any, bool, list[int]]] = [
        ("-1", False, list(range(6))),
        (2, False, [3, 4, 5]),
        (2, True, [2, 3, 4, 5]),
        (offset, False, [3, 4, 5]),
        (offset, True, [2, 3, 4, 5]),
        (time2, False, [3, 4, 5]),
    ]
    receivers = [
        await AsyncReceiver(eventhubs.connection_string, consumer_group="$Default" if n < 3 else "second",
                            partition_id="1", starting_position=start, starting_position_inclusive=inclusive
                            ).__aenter__()
        for n, (start, inclusive, _) in enumerate(cases)
    ]
    try:
        for receiver, (_, _, expected) in zip(receivers, cases):
            await receiver.wait_for(len(expected))
        await asyncio.sleep(0.1)
    finally:
        await asyncio.gather(*(r.__aexit__(None, None, None) for r in receivers))
    for receiver, (start, inclusive, expected) in zip(receivers, cases):
        assert [int(e.body_as_str()) for e in receiver.events] == expected, (start, inclusive)
        assert [e.sequence_number for e in receiver.events] == expected


async def test_async_latest_only_gets_new_events(eventhubs: EventHubsEndpoint) -> None:
    eventhubs.publish("0", [b"old"])
    async with AsyncReceiver(eventhubs.connection_string, partition_id="0", starting_position="@latest") as receiver:
        assert await async_wait_until(lambda: eventhubs.active_receivers() == 1)
        await send(eventhubs, ["new"], partition_id="0")
        await receiver.wait_for(1)
        await asyncio.sleep(0.1)
    assert [e.body_as_str() for e in receiver.events] == ["new"]


async def test_async_last_enqueued_event_properties(eventhubs: EventHubsEndpoint) -> None:
    eventhubs.publish("2", [b"a", b"b"])
    async with AsyncReceiver(eventhubs.connection_string, partition_id="2", starting_position="-1",
                             track_last_enqueued_event_properties=True) as receiver:
        await receiver.wait_for(2)
        eventhubs.publish("2", [b"c"])
        await receiver.wait_for(3)
        first, last = receiver.contexts[0].last_enqueued_event_properties, None
        last = receiver.contexts[-1].last_enqueued_event_properties
    assert first is not None and first["sequence_number"] >= 1
    assert last["sequence_number"] == 2
    assert last["offset"] == receiver.events[-1].offset
    assert last["enqueued_time"] == receiver.events[-1].enqueued_time


async def test_async_epoch_steal(eventhubs: EventHubsEndpoint) -> None:
    cs = eventhubs.connection_string
    async with AsyncReceiver(cs, partition_id="0", owner_level=5, starting_position="-1") as old:
        assert await async_wait_until(lambda: eventhubs.active_receivers() == 1)
        async with AsyncReceiver(cs, partition_id="0", owner_level=6, starting_position="-1") as new:
            assert await async_wait_until(lambda: bool(old.errors))
            assert isinstance(old.errors[0], ConnectionLostError)
            assert old.errors[0].error == "link:stolen"
            eventhubs.publish("0", [b"for-new"])
            assert [e.body_as_str() for e in await new.wait_for(1)] == ["for-new"]
            assert eventhubs.active_receivers() == 1
            assert new.errors == []


async def test_async_drop_connections_resumes_without_loss(eventhubs: EventHubsEndpoint) -> None:
    async with EventHubProducerClient.from_connection_string(eventhubs.connection_string) as producer, \
            AsyncReceiver(eventhubs.connection_string, partition_id="1", starting_position="-1") as receiver:
        await producer.send_batch([EventData(f"a{i}") for i in range(50)], partition_id="1")
        await receiver.wait_for(50)
        assert eventhubs.drop_connections() >= 2
        await producer.send_batch([EventData(f"b{i}") for i in range(50)], partition_id="1")  # reconnects
        await receiver.wait_for(100)
        await asyncio.sleep(0.1)
    assert [e.body_as_str() for e in receiver.events] == [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)]


async def test_async_restart_keeps_data(eventhubs: EventHubsEndpoint) -> None:
    await send(eventhubs, ["one", "two"], partition_id="0")
    eventhubs.restart(keep_data=True)
    async with AsyncReceiver(eventhubs.connection_string, partition_id="0", starting_position="-1") as receiver:
        events = await receiver.wait_for(2)
    assert [(e.body_as_str(), e.sequence_number) for e in events] == [("one", 0), ("two", 1)]
