"""The pure helpers of `consumer.eventhub`, on the SDK's own `EventData` (no server needed)."""

from datetime import datetime, timezone

import pytest
from azure.eventhub import EventData

from consumer.eventhub import ENQUEUED_TIME_ANNOTATION, body_bytes, enqueued_seconds


@pytest.mark.parametrize("milliseconds", [1_700_000_000_123, 1, 253_402_300_799_999])
def test_enqueued_seconds_is_the_sdks_enqueued_time(milliseconds):
    event = EventData(b"{}")
    event.raw_amqp_message.annotations[ENQUEUED_TIME_ANNOTATION] = milliseconds
    assert event.enqueued_time is not None
    assert enqueued_seconds(event) == event.enqueued_time.timestamp() == milliseconds / 1000


@pytest.mark.parametrize("value", [None, 0])
def test_enqueued_seconds_absent_as_the_sdk_says(value):
    event = EventData(b"{}")
    if value is not None:
        event.raw_amqp_message.annotations[ENQUEUED_TIME_ANNOTATION] = value
    assert event.enqueued_time is None and enqueued_seconds(event) is None


def test_enqueued_seconds_is_utc():
    event = EventData(b"{}")
    event.raw_amqp_message.annotations[ENQUEUED_TIME_ANNOTATION] = 1_700_000_000_000
    assert datetime.fromtimestamp(enqueued_seconds(event), timezone.utc) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


@pytest.mark.parametrize("body, expected", [
    (b'{"records": []}', b'{"records": []}'),
    ("é", "é".encode()),
    ([b"ab", b"cd"], b"abcd"),  # a data body in several sections
])
def test_body_bytes_of_data_bodies(body, expected):
    assert body_bytes(EventData(body)) == expected



# --- the receiver's per-event path (no server: the SDK's callbacks called directly) -------------

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402

from consumer.config import Settings  # noqa: E402
from consumer.eventhub import Receiver  # noqa: E402
from consumer.metrics import Metrics  # noqa: E402
from consumer.pipeline import Pipeline  # noqa: E402
from consumer.readiness import EventHubsReadiness  # noqa: E402

BOOM = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, "UsageType": "boom"}}]}'
GOOD = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, "UsageType": "SMS"}}]}'


class RaisingPipeline(Pipeline):
    """A pipeline with a bug that one body reaches: it counts the event, then raises with a message
    that quotes the body (as `ValueError`s of parsers do)."""

    def process(self, body, now, context=None):
        if b"boom" in body:
            self.metrics.events.inc((context.partition,))
            raise ValueError(f"cannot use {body[:40]!r}")
        return super().process(body, now, context)


class Letters:
    def __init__(self):
        self.letters = []

    def submit(self, letter, hold=None):
        self.letters.append(letter)

    def pending(self, partition):
        return []  # written at once


class FakeContext:
    def __init__(self, partition, last_enqueued):
        self.partition_id = partition
        self.last_enqueued_event_properties = {"sequence_number": last_enqueued}
        self.checkpoints = []

    async def update_checkpoint(self, event):
        self.checkpoints.append(event.sequence_number)


def hub_event(body: bytes, sequence_number: int) -> EventData:
    event = EventData(body)
    annotations = event.raw_amqp_message.annotations
    annotations[b"x-opt-sequence-number"] = sequence_number
    annotations[b"x-opt-offset"] = str(1000 + sequence_number).encode()
    annotations[ENQUEUED_TIME_ANNOTATION] = 1_700_000_000_000 + sequence_number
    return event


def receiver_with(pipeline_class=Pipeline, **settings):
    config = Settings.model_validate({
        "eventhub": {"connection_string": "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"},
        "checkpoint_store": {"connection_string": "UseDevelopmentStorage=true"},
        **settings,
    })
    metrics = Metrics(config.pipeline.buckets, "test")
    letters = Letters()
    receiver = Receiver(config, pipeline_class(config.pipeline, metrics.domain), metrics, None, letters)
    return receiver, metrics, letters


def test_an_event_whose_processing_raises_is_counted_logged_dead_lettered_and_passed(caplog):
    receiver, metrics, letters = receiver_with(RaisingPipeline)
    context = FakeContext("3", last_enqueued=12)
    events = [hub_event(GOOD, 10), hub_event(BOOM, 11), hub_event(GOOD, 12)]

    async def scenario():
        await receiver._on_initialize(context)
        with caplog.at_level(logging.INFO, logger="consumer.eventhub"):
            await receiver._on_batch(context, events)
        receiver.scrape_completed(receiver.scrape_started())  # checkpoints name only what a scrape has read
        await receiver._checkpoint(context, receiver.partitions["3"], final=True)

    asyncio.run(scenario())
    domain = metrics.domain
    assert domain.decode_errors.values == {("internal",): 1}
    assert domain.records.get("Usage", "processed") == 2  # the events after it were processed
    assert domain.events.get("3") == 3
    assert receiver.partitions["3"].last_sequence_number == 12
    assert context.checkpoints == [12]  # the checkpoint passes the failed event
    assert metrics.registry.get_sample_value("acs_consumer_partition_lag_events", {"partition": "3"}) == 0
    [letter] = letters.letters
    assert (letter.partition, letter.sequence_number, letter.offset, letter.reason) == ("3", 11, "1011", "internal")
    assert letter.body == BOOM
    assert letter.detail.startswith("ValueError at test_eventhub.py:") and letter.detail.endswith("in process")
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (line.partition, line.sequence_number, line.reason) == ("3", 11, "internal")
    text = line.getMessage() + json.dumps({k: str(v) for k, v in vars(line).items()})
    assert "ValueError" in text and "boom" not in text and "cannot use" not in text


def test_a_failure_outside_the_pipeline_fails_only_that_event(caplog):
    receiver, metrics, letters = receiver_with()
    context = FakeContext("0", last_enqueued=2)
    bad = hub_event(GOOD, 1)
    bad.raw_amqp_message.annotations[ENQUEUED_TIME_ANNOTATION] = b"not a number"  # enqueued_seconds raises
    asyncio.run(receiver._on_initialize(context))
    asyncio.run(receiver._on_batch(context, [hub_event(GOOD, 0), bad, hub_event(GOOD, 2)]))
    assert metrics.domain.decode_errors.values == {("internal",): 1}
    assert metrics.domain.records.get("Usage", "processed") == 2
    assert receiver.partitions["0"].last_sequence_number == 2
    [letter] = letters.letters
    assert (letter.sequence_number, letter.reason, letter.body) == (1, "internal", GOOD)


def test_stalled_seconds_grow_only_while_events_wait_without_progress():
    receiver, metrics, _ = receiver_with()
    context = FakeContext("1", last_enqueued=5)

    async def scenario():
        await receiver._on_initialize(context)
        start = receiver.owned["1"].stall.advanced_at
        assert receiver.stalled(start + 100) == {"1": 0.0}  # nothing known to wait yet
        await receiver._on_batch(context, [hub_event(GOOD, 0)])
        moved = receiver.owned["1"].stall.advanced_at
        assert moved >= start
        assert receiver.stalled(moved + 7) == {"1": pytest.approx(7.0)}  # events 1..5 wait, none processed since
        await receiver._on_batch(context, [hub_event(GOOD, n) for n in range(1, 6)])  # caught up with 5
        await receiver._on_batch(context, [])  # nothing waits: refreshed
        assert receiver.stalled(receiver.owned["1"].stall.advanced_at + 50) == {"1": 0.0}
        # A batch in hand that does not finish: stalled from the last progress on.
        never = asyncio.get_running_loop().create_future()
        receiver.owned["1"].batch = never
        since = receiver.owned["1"].stall.advanced_at
        assert receiver.stalled(since + 30) == {"1": pytest.approx(30.0)}
        samples = {s.labels["partition"]: s.value for f in metrics.registry.collect()
                   if f.name == "acs_consumer_partition_stalled_seconds" for s in f.samples}
        assert set(samples) == {"1"} and samples["1"] >= 0
        never.cancel()

    asyncio.run(scenario())


def test_a_partition_closed_by_an_error_and_claimed_again_stays_stalled():
    from azure.eventhub import CloseReason

    receiver, _, _ = receiver_with()
    context = FakeContext("2", last_enqueued=9)

    async def scenario():
        await receiver._on_initialize(context)
        await receiver._on_batch(context, [hub_event(GOOD, 0)])
        since = receiver.owned["2"].stall.advanced_at
        await receiver._on_error(context, RuntimeError("handler failed"))
        await receiver._on_close(context, CloseReason.OWNERSHIP_LOST)
        assert "2" not in receiver.partitions and receiver.stalled() == {}
        await receiver._on_initialize(context)  # the SDK claims it again at once
        assert receiver.owned["2"].stall.advanced_at == since
        receiver.owned["2"].batch = asyncio.get_running_loop().create_future()  # the replay, in hand
        assert receiver.stalled(since + 60) == {"2": pytest.approx(60.0)}
        # A close without an error (shutdown, rebalancing) forgets it: a later claim starts afresh.
        receiver.owned["2"].batch.cancel()
        await receiver._on_close(context, CloseReason.SHUTDOWN)
        await receiver._on_initialize(context)
        assert receiver.owned["2"].stall.advanced_at > since

    asyncio.run(scenario())


# --- scrape alignment and the lame duck, through the receiver ------------------------------------


def test_checkpoints_name_what_the_last_completed_scrape_showed():
    receiver, _, _ = receiver_with(checkpoint={"interval_seconds": 0.001, "every_events": 1})
    context = FakeContext("0", last_enqueued=5)

    async def scenario():
        await receiver._on_initialize(context)
        await receiver._on_batch(context, [hub_event(GOOD, n) for n in range(3)])  # 0..2
        await receiver._checkpoint(context, receiver.partitions["0"], final=True)
        assert context.checkpoints == []  # nothing scraped yet
        snapshot = receiver.scrape_started()
        await receiver._on_batch(context, [hub_event(GOOD, n) for n in range(3, 6)])  # 3..5, during the render
        receiver.scrape_completed(snapshot)
        await receiver._checkpoint(context, receiver.partitions["0"], final=True)
        receiver.scrape_completed(receiver.scrape_started())
        await receiver._checkpoint(context, receiver.partitions["0"], final=True)

    asyncio.run(scenario())
    assert context.checkpoints == [2, 5]


def test_the_lame_duck_counts_no_more_and_waits_for_a_scrape_of_the_last_counts():
    receiver, metrics, _ = receiver_with()
    context = FakeContext("0", last_enqueued=9)
    outcomes = {}

    async def scenario():
        loop = asyncio.get_running_loop()
        await receiver._on_initialize(context)
        await receiver._on_batch(context, [hub_event(GOOD, n) for n in range(3)])
        started = loop.time()
        outcomes["unscraped"] = (await receiver.drain(0.3), loop.time() - started)
        await receiver._on_batch(context, [hub_event(GOOD, n) for n in range(3, 6)])  # not counted
        draining = asyncio.ensure_future(receiver.drain(30))
        await asyncio.sleep(0.05)
        outcomes["before the scrape"] = draining.done()
        receiver.scrape_completed(receiver.scrape_started())
        outcomes["scraped"] = await asyncio.wait_for(draining, 5)
        outcomes["again"] = await receiver.drain(0)  # nothing left unscraped: no wait

    asyncio.run(scenario())
    unscraped, waited = outcomes["unscraped"]
    assert unscraped is False and 0.3 <= waited < 5
    assert outcomes["before the scrape"] is False
    assert outcomes["scraped"] is True and outcomes["again"] is True
    assert metrics.domain.events.get("0") == 3
    assert receiver.partitions["0"].last_sequence_number == 2


# --- errors: counted by kind, told to readiness where they concern Event Hubs ---------------------


def test_errors_are_counted_by_kind_and_only_event_hubs_failures_make_it_unready(caplog):
    from azure.core.exceptions import ServiceRequestError
    from azure.eventhub._pyamqp import error as amqp

    from tests.test_errors import link

    receiver, metrics, _ = receiver_with()
    context = FakeContext("0", last_enqueued=0)
    receiver.readiness.hub_answered()

    def kinds():
        return {kind: metrics.registry.get_sample_value("acs_consumer_errors_total", {"kind": kind})
                for kind in ("partition_stolen", "storage_unreachable", "entity_not_found", "unreachable")}

    async def scenario():
        with caplog.at_level(logging.WARNING, logger="consumer.eventhub"):
            await receiver._on_error(None, ServiceRequestError("Cannot connect to host"))  # the load balancer's storage
            await receiver._on_error(context, link(amqp.ErrorCondition.LinkStolen, "New receiver with higher epoch"))
            assert receiver.readiness.check()[0], receiver.readiness.check()  # neither concerns Event Hubs' answer
            await receiver._on_error(context, link(amqp.ErrorCondition.NotFound, "The consumer group 'x' could not be found."))
            assert receiver.readiness.check() == (False, "entity_not_found: receiving fails on every partition it tried, "
                                                         "last error 0 s ago: The consumer group 'x' could not be found.; "
                                                         "Error condition: ErrorCondition.NotFound; Error Description: The "
                                                         "consumer group 'x' could not be found.")
            await receiver._on_batch(context, [hub_event(GOOD, 0)])  # events again
            assert receiver.readiness.check() == (True, "receiving (partitions 0)")

    asyncio.run(scenario())
    assert kinds() == {"partition_stolen": 1, "storage_unreachable": 1, "entity_not_found": 1, "unreachable": 0}
    lines = [r for r in caplog.records if r.getMessage().startswith("event hubs client error")]
    assert [(r.kind, r.error_type) for r in lines] == [("storage_unreachable", "ServiceRequestError"),
                                                       ("partition_stolen", "ConnectionLostError"),
                                                       ("entity_not_found", "ConnectionLostError")]
    assert all("\n" not in r.error_reason for r in lines)


def test_the_hubs_last_enqueued_event_makes_a_partition_without_batches_stalled():
    """The probe reads each owned partition's last enqueued event from the hub: a partition whose
    receiver hands over no batch any more is stalled once the hub holds events past the last one it
    processed. A partition that has processed nothing is not asked (where it started is unknown here:
    older events would look waiting)."""
    receiver, _, _ = receiver_with()
    hub = {"1": 9, "2": 40}
    asked = []

    class Client:
        async def get_partition_properties(self, partition):
            asked.append(partition)
            return {"last_enqueued_sequence_number": hub[partition]}

    receiver.client = Client()
    busy, fresh = FakeContext("1", last_enqueued=0), FakeContext("2", last_enqueued=None)
    fresh.last_enqueued_event_properties = {}

    async def scenario():
        await receiver._on_initialize(busy)
        await receiver._on_initialize(fresh)
        await receiver._on_batch(busy, [hub_event(GOOD, 0)])  # caught up with what its batches show
        since = receiver.owned["1"].stall.advanced_at
        assert receiver.stalled(since + 60) == {"1": 0.0, "2": 0.0}
        await receiver._read_last_enqueued()
        assert asked == ["1"]  # "2" has processed nothing
        assert receiver.stalled(since + 60) == {"1": pytest.approx(60.0), "2": 0.0}
        hub["1"] = 3  # an older answer never moves the mark back
        await receiver._read_last_enqueued()
        assert receiver.owned["1"].stall.last_enqueued == 9
        await receiver._on_batch(busy, [])  # nor does a batch whose properties are older (0)
        assert receiver.owned["1"].stall.last_enqueued == 9
        assert receiver.stalled(since + 60) == {"1": pytest.approx(60.0), "2": 0.0}

    asyncio.run(scenario())


def test_a_failed_read_of_one_partition_leaves_the_hub_answering():
    """The probe's ids answered: a partition's last-enqueued read failing afterwards (a transient
    error on one management call) does not make /readyz say that Event Hubs does not answer."""
    receiver, _, _ = receiver_with()
    calls = []

    class Client:
        async def get_partition_ids(self):
            calls.append("ids")
            return ["1"]

        async def get_partition_properties(self, partition):
            calls.append(partition)
            raise ConnectionError("one management call lost")

    receiver.client = Client()
    busy = FakeContext("1", last_enqueued=0)

    async def scenario():
        await receiver._on_initialize(busy)
        await receiver._on_batch(busy, [hub_event(GOOD, 0)])
        receiver.readiness = EventHubsReadiness(60)  # forget the batch: only the probe speaks
        probing = asyncio.ensure_future(receiver.probe(3600))
        while len(calls) < 2:
            await asyncio.sleep(0)
        probing.cancel()
        await asyncio.gather(probing, return_exceptions=True)
        return receiver.readiness.check()

    ok, detail = asyncio.run(scenario())
    assert calls == ["ids", "1"]
    assert ok and detail.startswith("Event Hubs answered"), detail


def test_a_step_of_the_wall_clock_does_not_make_a_checkpoint_pass_unscraped_counts():
    """The checkpoint rules measure time (rate limit, no scrape for `no_scrape_seconds`) on the
    monotonic clock: an NTP step of the wall clock is no silence of Prometheus."""
    wall = [1_800_000_000.0]
    config = Settings.model_validate({
        "eventhub": {"connection_string": "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"},
        "checkpoint_store": {"connection_string": "UseDevelopmentStorage=true"},
    })
    metrics = Metrics(config.pipeline.buckets, "test")
    receiver = Receiver(config, Pipeline(config.pipeline, metrics.domain), metrics, None, Letters(),
                        clock=lambda: wall[0])
    context = FakeContext("0", last_enqueued=11)

    async def scenario():
        await receiver._on_initialize(context)
        await receiver._on_batch(context, [hub_event(GOOD, 10)])
        receiver.scrape_completed(receiver.scrape_started())  # Prometheus has read event 10
        await receiver._on_batch(context, [hub_event(GOOD, 11)])  # counted, not scraped
        wall[0] += 3600  # the wall clock is stepped an hour forward
        await receiver._checkpoint(context, receiver.partitions["0"], final=True)

    asyncio.run(scenario())
    assert context.checkpoints == [10]
    assert metrics.registry.get_sample_value("acs_consumer_unscraped_checkpoints_total") == 0
