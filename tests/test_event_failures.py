"""One event that fails in the shell with an exception other than `ValueError` fails alone: the batch
goes on, the event is counted `internal` (the per-event handler in `Receiver._process` must catch every
`Exception`, not only the parse errors the other tests raise)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from consumer.eventhub import ENQUEUED_TIME_ANNOTATION
from tests.test_eventhub import GOOD, FakeContext, Letters, hub_event, receiver_with


@pytest.mark.parametrize("annotation", [[1_700_000_000_000], {b"ms": 1}], ids=["list", "map"])
def test_an_enqueued_time_of_the_wrong_type_fails_only_that_event(annotation: object) -> None:
    """AMQP annotations may hold lists and maps: `float()` of one raises `TypeError`."""
    receiver, metrics, letters = receiver_with()
    context = FakeContext("0", last_enqueued=2)
    bad = hub_event(GOOD, 1)
    bad.raw_amqp_message.annotations[ENQUEUED_TIME_ANNOTATION] = annotation
    asyncio.run(receiver._on_initialize(context))
    asyncio.run(receiver._on_batch(context, [hub_event(GOOD, 0), bad, hub_event(GOOD, 2)]))
    assert metrics.domain.decode_errors.values == {("internal",): 1}
    assert metrics.domain.records.get("Usage", "processed") == 2  # the event after it was processed
    assert receiver.partitions["0"].last_sequence_number == 2
    [letter] = letters.letters
    assert (letter.sequence_number, letter.reason, letter.detail.split(" ")[0]) == (1, "internal", "TypeError")


class RefusingLetters(Letters):
    """A dead-letter writer that refuses letters (closed meanwhile, say) with a `RuntimeError`."""

    def submit(self, letter, hold=None):
        raise RuntimeError("dead-letter queue closed")


def test_a_rejected_body_whose_dead_letter_raises_fails_only_that_event(caplog: pytest.LogCaptureFixture) -> None:
    receiver, metrics, _ = receiver_with()
    receiver.deadletters = RefusingLetters()
    context = FakeContext("0", last_enqueued=2)
    asyncio.run(receiver._on_initialize(context))
    with caplog.at_level(logging.ERROR, logger="consumer.eventhub"):
        asyncio.run(receiver._on_batch(context, [hub_event(GOOD, 0), hub_event(b"not json", 1), hub_event(GOOD, 2)]))
    assert metrics.domain.decode_errors.values == {("invalid_json",): 1, ("internal",): 1}
    assert metrics.domain.records.get("Usage", "processed") == 2
    assert receiver.partitions["0"].last_sequence_number == 2
    line = [r for r in caplog.records if r.levelno == logging.ERROR][-1]
    assert "dead letter not submitted: RuntimeError" in line.getMessage() and line.sequence_number == 1
