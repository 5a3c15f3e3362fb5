"""Unit tests of the endpoint's hand-encoded frames and its in-memory hub (decoded with the SDK's codec)."""

from __future__ import annotations

import uuid

import pytest
from acs_sms_devtools.eventhubs.amqp import amqp_decode as _decode
from acs_sms_devtools.eventhubs.amqp import Message, Properties
from acs_sms_devtools.eventhubs.amqp import TransferFrame

from acs_sms_devtools.eventhubs import codec
from acs_sms_devtools.eventhubs.hub import EventHub, parse_selector


def test_hand_encoded_transfer_is_what_the_sdk_codec_produces() -> None:
    payload = b"payload-bytes"
    frame = codec.encode_transfer(7, 3, 123456, len(payload), settled=True) + payload
    assert int.from_bytes(frame[:4], "big") == len(frame)
    assert frame[4:6] == b"\x02\x00" and int.from_bytes(frame[6:8], "big") == 7
    code, fields = _decode.decode_frame(memoryview(frame)[8:])
    assert code == 0x14
    transfer = TransferFrame(*fields)
    assert transfer.handle == 3
    assert transfer.delivery_id == 123456
    assert transfer.delivery_tag == (123456).to_bytes(4, "big")
    assert transfer.message_format == 0
    assert transfer.settled is True and transfer.more is False
    assert bytes(transfer.payload) == payload
    # the SDK's own encoder gives the same field list
    reference = codec.encode_performative(
        7, TransferFrame(handle=3, delivery_id=123456, delivery_tag=(123456).to_bytes(4, "big"), message_format=0,
                         settled=True, more=False, payload=payload)
    )
    assert _decode.decode_frame(memoryview(reference)[8:])[1][:6] == fields[:6]


def test_stored_event_keeps_sections_and_gets_system_annotations() -> None:
    hub = EventHub("h", 1)
    raw = codec.encode_message(
        Message(
            message_annotations={b"x-opt-partition-key": "pk", b"x-custom": 5},
            properties=Properties(message_id=uuid.UUID(int=1), content_type=b"application/json"),
            application_properties={"a": "b"},
            data=[b"body"],
        )
    )
    (event,) = hub.enqueue_raw([raw], enqueued_ms=1_700_000_000_000)
    message = codec.decode_message(b"".join(event.chunks))
    assert message.data == [b"body"]
    assert message.application_properties == {b"a": b"b"}
    assert message.properties.message_id == uuid.UUID(int=1)
    annotations = message.message_annotations
    assert annotations[b"x-opt-partition-key"] == b"pk" and annotations[b"x-custom"] == 5
    assert annotations[b"x-opt-sequence-number"] == 0
    assert annotations[b"x-opt-offset"] == b"0"
    assert annotations[b"x-opt-enqueued-time"] == 1_700_000_000_000
    assert event.partition_key == b"pk"


def test_offsets_increase_and_retention_cap() -> None:
    hub = EventHub("h", 1, max_events_per_partition=3)
    partition = hub.partitions["0"]
    raws = [codec.encode_message(Message(data=[b"x" * n])) for n in (1, 10, 100, 1000, 5)]
    stored = hub.enqueue_raw(raws)
    offsets = [e.offset for e in stored]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    assert len(partition) == 3 and partition.begin_sequence == 2 and partition.last_sequence == 4
    assert partition.get(1) is None and partition.get(2) is stored[2]
    assert partition.start_sequence("amqp.annotation.x-opt-offset > '-1'") == 2
    assert partition.start_sequence("amqp.annotation.x-opt-offset > '@latest'") == 5
    assert partition.start_sequence(f"amqp.annotation.x-opt-offset >= '{offsets[3]}'") == 3
    assert partition.start_sequence(f"amqp.annotation.x-opt-offset > '{offsets[3]}'") == 4
    assert partition.start_sequence("amqp.annotation.x-opt-sequence-number > '0'") == 2


def test_many_appends_stay_bounded() -> None:
    hub = EventHub("h", 1, max_events_per_partition=100)
    raw = codec.encode_message(Message(data=[b"e"]))
    for _ in range(50):
        hub.enqueue_raw([raw] * 1000)
    partition = hub.partitions["0"]
    assert len(partition) == 100
    assert len(partition._events) < 10_000  # compacted  # noqa: SLF001
    assert partition.get(49_999) is not None and partition.begin_sequence == 49_900


def test_round_robin_and_key_hash() -> None:
    hub = EventHub("h", 3)
    assert [hub.next_round_robin().id for _ in range(4)] == ["0", "1", "2", "0"]
    assert hub.partition_for_key("abc") is hub.partition_for_key(b"abc")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("amqp.annotation.x-opt-offset > '-1'", ("offset", False, "-1")),
        ("amqp.annotation.x-opt-sequence-number >= '5'", ("sequence", True, "5")),
        ("amqp.annotation.x-opt-enqueued-time > '1700000000000'", ("time", False, "1700000000000")),
    ],
)
def test_parse_selector(selector: str, expected: tuple[str, bool, str]) -> None:
    assert parse_selector(selector) == expected


def test_parse_selector_rejects_other_filters() -> None:
    with pytest.raises(ValueError):
        parse_selector("amqp.annotation.x-opt-foo > '1'")


def test_an_sdk_of_another_minor_than_the_one_checked_is_named() -> None:
    from acs_sms_devtools.eventhubs.amqp import CHECKED_AGAINST, unchecked_sdk

    assert unchecked_sdk(CHECKED_AGAINST) is None
    assert unchecked_sdk("5.15.9", "5.15.1") is None
    assert unchecked_sdk("5.16.0", "5.15.1") == (
        "azure-eventhub 5.16.0 is installed; the local Event Hubs endpoint uses its private _pyamqp modules and "
        "was checked against 5.15.1 (devtools/pyproject.toml pins that minor)")
