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

