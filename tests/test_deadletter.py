"""consumer.deadletter against Azurite: every outcome (written, error, dropped), truncation, the byte
bound, the rate limit; and the receiver's checkpoint held back while a dead letter is pending."""

from __future__ import annotations

import asyncio
import logging

from azure.storage.blob.aio import BlobServiceClient

from consumer import deadletter
from consumer.config import DeadLetterSettings, Settings
from consumer.deadletter import DeadLetter, DeadLetterWriter
from consumer.eventhub import Receiver
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline
from tests.test_eventhub import GOOD, FakeContext, hub_event

NAMESPACE, HUB, GROUP = "ns.servicebus.windows.net", "hub", "$Default"


def letter(sequence_number: int, body: bytes = b"not json", partition: str = "0") -> DeadLetter:
    return DeadLetter(body, partition, sequence_number, str(1000 + sequence_number), 1_700_000_000.0,
                      "invalid_json", "not JSON: unexpected character")


def outcomes(metrics: Metrics) -> dict[str, float]:
    return {outcome: metrics.registry.get_sample_value("acs_consumer_dead_letters_total", {"outcome": outcome}) or 0
            for outcome in ("written", "error", "dropped")}


class Gate:
    """A container client whose uploads wait until the test opens the gate, or fail `failures` times."""

    def __init__(self, container, failures: int = 0) -> None:
        self.container = container
        self.failures = failures
        self.open = asyncio.Event()
        self.open.set()
        self.attempts = 0

    async def upload_blob(self, *args, **kwargs):
        self.attempts += 1
        await self.open.wait()
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("storage went away")
        return await self.container.upload_blob(*args, **kwargs)


async def blobs(container) -> dict[str, tuple[bytes, dict[str, str]]]:
    found = {}
    async for blob in container.list_blobs(include=["metadata"]):
        found[blob.name] = (await (await container.download_blob(blob.name)).readall(), blob.metadata)
    return found


def run_with_writer(azurite, blob_container, scenario, gate: dict | None = None, **settings):
    """`scenario(writer, container, metrics)` with a started writer on the test's container."""
    metrics = Metrics(Settings.model_fields["pipeline"].default.buckets, "test")

    async def main():
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            container = service.get_container_client(blob_container)
            target = Gate(container, **gate) if gate is not None else container
            writer = DeadLetterWriter(target, DeadLetterSettings(**settings), metrics.consumer, NAMESPACE, HUB, GROUP)
            writer.start()
            try:
                return await scenario(writer, container, metrics, target)
            finally:
                await writer.close(5)

    return asyncio.run(main()), metrics


def test_written_with_position_and_reason(azurite, blob_container):
    async def scenario(writer, container, metrics, _):
        writer.submit(letter(7, b"\x00body\xff"), hold="h")
        assert [p.hold for p in writer.pending("0")] == ["h"] and writer.queued_bytes == 6
        assert await writer.settled("0", 10)
        assert writer.pending("0") == [] and writer.queued_bytes == 0
        return await blobs(container)

    found, metrics = run_with_writer(azurite, blob_container, scenario)
    body, meta = found[f"{NAMESPACE}/hub/Default/0/7.body"]
    assert body == b"\x00body\xff"
    assert meta == {"partition": "0", "sequencenumber": "7", "offset": "1007", "enqueuedtime": "2023-11-14T22:13:20+00:00",
                    "reason": "invalid_json", "detail": "not JSON: unexpected character", "size": "6",
                    "truncated": "false"}
    assert outcomes(metrics) == {"written": 1, "error": 0, "dropped": 0}


def test_bodies_over_max_body_bytes_are_cut_when_submitted(azurite, blob_container):
    async def scenario(writer, container, metrics, _):
        writer.submit(letter(1, b"x" * 5000))
        assert writer.queued_bytes == 1000  # held in memory cut
        assert await writer.settled("0", 10)
        return await blobs(container)

    found, metrics = run_with_writer(azurite, blob_container, scenario, max_body_bytes=1000)
    body, meta = found[f"{NAMESPACE}/hub/Default/0/1.body"]
    assert body == b"x" * 1000 and (meta["size"], meta["truncated"]) == ("5000", "true")
    assert outcomes(metrics) == {"written": 1, "error": 0, "dropped": 0}


def test_beyond_max_blobs_per_minute_letters_are_dropped_and_logged(azurite, blob_container, caplog):
    async def scenario(writer, container, metrics, _):
        for n in range(5):
            writer.submit(letter(n))
        assert [p.letter.sequence_number for p in writer.pending("0")] == [0, 1, 2]
        assert await writer.settled("0", 10)
        return await blobs(container)

    with caplog.at_level(logging.WARNING, logger="consumer.deadletter"):
        found, metrics = run_with_writer(azurite, blob_container, scenario, max_blobs_per_minute=3)
    assert sorted(found) == [f"{NAMESPACE}/hub/Default/0/{n}.body" for n in range(3)]
    assert outcomes(metrics) == {"written": 3, "error": 0, "dropped": 2}
    dropped = [(r.sequence_number, r.why) for r in caplog.records if r.getMessage().startswith("dead letter dropped")]
    assert dropped == [(3, "over max_blobs_per_minute"), (4, "over max_blobs_per_minute")]


def test_queued_bytes_are_bounded(azurite, blob_container, caplog):
    async def scenario(writer, container, metrics, gate):
        gate.open.clear()  # storage holds every write: letters queue up
        for n in range(6):
            writer.submit(letter(n, b"y" * 400))
        queued = writer.queued_bytes
        gate.open.set()
        assert await writer.settled("0", 10)
        return queued, await blobs(container)

    with caplog.at_level(logging.WARNING, logger="consumer.deadletter"):
        (queued, found), metrics = run_with_writer(azurite, blob_container, scenario, gate={}, max_queued_bytes=1000)
    assert queued == 800  # two of 400 bytes fit under 1,000
    assert sorted(found) == [f"{NAMESPACE}/hub/Default/0/0.body", f"{NAMESPACE}/hub/Default/0/1.body"]
    assert outcomes(metrics) == {"written": 2, "error": 0, "dropped": 4}
    assert {r.why for r in caplog.records if r.getMessage().startswith("dead letter dropped")} == {"over max_queued_bytes"}


def test_a_failed_write_is_counted_and_retried(azurite, blob_container, monkeypatch):
    monkeypatch.setattr(deadletter, "RETRY_DELAYS", (0.01, 0.01))

    async def scenario(writer, container, metrics, gate):
        writer.submit(letter(4))
        assert await writer.settled("0", 10)
        return gate.attempts, await blobs(container)

    (attempts, found), metrics = run_with_writer(azurite, blob_container, scenario, gate={"failures": 2})
    assert attempts == 3 and list(found) == [f"{NAMESPACE}/hub/Default/0/4.body"]
    assert outcomes(metrics) == {"written": 1, "error": 2, "dropped": 0}


def test_a_letter_that_cannot_be_written_is_dropped_after_the_last_attempt(azurite, blob_container, monkeypatch, caplog):
    monkeypatch.setattr(deadletter, "RETRY_DELAYS", (0.01, 0.01))

    async def scenario(writer, container, metrics, gate):
        writer.submit(letter(9))
        assert await writer.settled("0", 10)
        return gate.attempts, await blobs(container)

    with caplog.at_level(logging.WARNING, logger="consumer.deadletter"):
        (attempts, found), metrics = run_with_writer(azurite, blob_container, scenario, gate={"failures": 5})
    assert attempts == deadletter.WRITE_ATTEMPTS == 3 and found == {}
    assert outcomes(metrics) == {"written": 0, "error": 3, "dropped": 1}
    [line] = [r for r in caplog.records if r.getMessage().startswith("dead letter dropped")]
    assert (line.partition, line.sequence_number, line.why) == ("0", 9, "not written after 3 attempts")


def test_settled_waits_only_as_long_as_it_is_told(azurite, blob_container):
    async def scenario(writer, container, metrics, gate):
        gate.open.clear()
        writer.submit(letter(1))
        writer.submit(letter(2, partition="1"))
        waited = await writer.settled("0", 0.3)
        other = await writer.settled("2", 0.01)  # nothing pending there
        gate.open.set()
        return waited, other, await writer.settled("0", 10), await writer.settled("1", 10)

    results, _ = run_with_writer(azurite, blob_container, scenario, gate={})
    assert results == (False, True, True, True)


# --- the receiver: checkpoints wait for dead letters ------------------------------------------------


def test_the_checkpoint_is_held_back_while_a_dead_letter_is_pending(azurite, blob_container):
    """Events 0..3 of a partition, event 1 undecodable; storage holds its dead letter: checkpoints name
    event 0 at most (the event before it) until the letter is written, then they pass it; the final
    checkpoint at close waits for the partition's letters."""
    config = Settings.model_validate({
        "eventhub": {"connection_string": "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"},
        "checkpoint_store": {"connection_string": azurite.connection_string},
        "checkpoint": {"interval_seconds": 1000, "every_events": 1, "scrape_aligned": False},
    })
    metrics = Metrics(config.pipeline.buckets, "test")

    async def main():
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            gate = Gate(service.get_container_client(blob_container))
            writer = DeadLetterWriter(gate, config.deadletter, metrics.consumer, NAMESPACE, HUB, GROUP)
            writer.start()
            receiver = Receiver(config, Pipeline(config.pipeline, metrics.domain), metrics, None, writer)
            context = FakeContext("0", last_enqueued=5)
            await receiver._on_initialize(context)
            progress = receiver.partitions["0"]
            gate.open.clear()
            await receiver._on_batch(context, [hub_event(GOOD, 0), hub_event(b"not json", 1), hub_event(GOOD, 2),
                                               hub_event(GOOD, 3)])
            await receiver.owned["0"].checkpoint
            held = list(context.checkpoints)
            assert progress.unsaved_events == 3  # still due: retried at the next batch
            await receiver._on_batch(context, [hub_event(GOOD, 4)])
            await receiver.owned["0"].checkpoint
            still_held = list(context.checkpoints)
            gate.open.set()
            assert await writer.settled("0", 10)
            await receiver._on_batch(context, [hub_event(GOOD, 5)])
            await receiver.owned["0"].checkpoint
            passed = list(context.checkpoints)
            # At close: a pending letter is waited for before the final checkpoint.
            gate.open.clear()
            await receiver._on_batch(context, [hub_event(b"[]", 6), hub_event(GOOD, 7)])
            await receiver.owned["0"].checkpoint
            before_close = list(context.checkpoints)
            asyncio.get_running_loop().call_later(0.3, gate.open.set)
            from azure.eventhub import CloseReason
            await receiver._on_close(context, CloseReason.SHUTDOWN)
            await writer.close(5)
            return held, still_held, passed, before_close, list(context.checkpoints)

    held, still_held, passed, before_close, final = asyncio.run(main())
    assert held == [0] and still_held == [0]
    assert passed == [0, 5]
    assert before_close == [0, 5]  # event 6's letter pending: nothing after 5 may be named
    assert final == [0, 5, 7]
    assert metrics.registry.get_sample_value("acs_consumer_dead_letters_total", {"outcome": "written"}) == 2


def test_a_checkpoint_is_not_written_when_the_first_event_is_pending(azurite, blob_container):
    config = Settings.model_validate({
        "eventhub": {"connection_string": "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=s;EntityPath=hub"},
        "checkpoint_store": {"connection_string": azurite.connection_string},
        "checkpoint": {"interval_seconds": 1000, "every_events": 1, "scrape_aligned": False},
        "shutdown_timeout_seconds": 1,
    })
    metrics = Metrics(config.pipeline.buckets, "test")

    async def main():
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            gate = Gate(service.get_container_client(blob_container))
            gate.open.clear()  # never written
            writer = DeadLetterWriter(gate, config.deadletter, metrics.consumer, NAMESPACE, HUB, GROUP)
            writer.start()
            receiver = Receiver(config, Pipeline(config.pipeline, metrics.domain), metrics, None, writer)
            context = FakeContext("0", last_enqueued=1)
            await receiver._on_initialize(context)
            await receiver._on_batch(context, [hub_event(b"nope", 0), hub_event(GOOD, 1)])
            await receiver.owned["0"].checkpoint
            from azure.eventhub import CloseReason
            await receiver._on_close(context, CloseReason.SHUTDOWN)  # waits 0.25 s for the letter, in vain
            pending = [p.letter.sequence_number for p in writer.pending("0")]
            await writer.close(0.1)
            return pending, list(context.checkpoints)

    pending, checkpoints = asyncio.run(main())
    assert pending == [0]
    assert checkpoints == []  # the replay starts at event 0 again and submits its letter again


def test_a_letter_that_makes_the_writer_raise_is_dropped_and_the_writer_goes_on(caplog):
    """Whatever raises outside the storage call (here the metadata of an enqueued time no datetime can
    hold) fails that letter, never the writer: else every later letter stays pending, and the
    checkpoints of their partitions stay behind them until the process ends."""
    metrics = Metrics(Settings.model_fields["pipeline"].default.buckets, "test")
    uploaded: list[str] = []

    class Container:
        async def upload_blob(self, name, *args, **kwargs):
            uploaded.append(name)

    async def main():
        writer = DeadLetterWriter(Container(), DeadLetterSettings(), metrics.consumer, NAMESPACE, HUB, GROUP)
        writer.start()
        try:
            writer.submit(DeadLetter(b"x", "0", 5, "5", 1e300, "invalid_json", "not JSON"), hold="a")
            writer.submit(letter(6), hold="b")
            return await writer.settled("0", 5), writer.pending("0")
        finally:
            await writer.close(5)

    with caplog.at_level(logging.WARNING, logger="consumer.deadletter"):
        settled, pending = asyncio.run(main())
    assert settled and pending == []
    assert uploaded == [f"{NAMESPACE}/{HUB}/Default/0/6.body"]
    assert outcomes(metrics) == {"written": 1, "error": 0, "dropped": 1}
    [line] = [r for r in caplog.records if r.getMessage().startswith("dead letter dropped")]
    assert (line.partition, line.sequence_number) == ("0", 5)
