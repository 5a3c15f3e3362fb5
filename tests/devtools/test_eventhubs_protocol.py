"""Protocol-level checks of the local Event Hubs endpoint with a raw socket (frames built and read
with the SDK's own pyamqp codec): SASL offer, heartbeats, idle timeout, management error status."""

from __future__ import annotations

import socket
import time

from azure.eventhub import EventHubProducerClient
from acs_sms_devtools.eventhubs.amqp import amqp_decode as _decode
from acs_sms_devtools.eventhubs.amqp import OpenFrame, SASLInit
from azure.eventhub.exceptions import EventHubError

import pytest
from eventhubs_helpers import wait_until

from acs_sms_devtools.eventhubs import EventHubsEndpoint, codec


def read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, int | None, list | None]:
    """(frame type, performative code or None for an empty frame, fields)."""
    header = read_exact(sock, 8)
    size = int.from_bytes(header[:4], "big")
    body = read_exact(sock, size - 8)
    if size == 8:
        return header[5], None, None
    code, fields = _decode.decode_frame(memoryview(body)[(header[4] - 2) * 4 :])
    return header[5], code, fields


def open_connection(endpoint: EventHubsEndpoint, idle_timeout_ms: int | None) -> socket.socket:
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
    sock.sendall(codec.SASL_HEADER)
    assert read_exact(sock, 8) == codec.SASL_HEADER
    frame_type, code, fields = read_frame(sock)
    assert (frame_type, code) == (1, 0x40)
    assert set(fields[0]) == {b"ANONYMOUS", b"PLAIN", b"MSSBCBS"}
    sock.sendall(codec.encode_performative(0, SASLInit(mechanism=b"PLAIN", initial_response=b"\0k\0v", hostname=None),
                                           codec.FRAME_SASL))
    frame_type, code, fields = read_frame(sock)
    assert (frame_type, code, fields[0]) == (1, 0x44, 0)  # sasl-outcome ok
    sock.sendall(codec.AMQP_HEADER)
    assert read_exact(sock, 8) == codec.AMQP_HEADER
    sock.sendall(codec.encode_performative(0, OpenFrame(
        container_id="raw", hostname=None, max_frame_size=65536, channel_max=10, idle_timeout=idle_timeout_ms,
        outgoing_locales=None, incoming_locales=None, offered_capabilities=None, desired_capabilities=None,
        properties=None)))
    _, code, fields = read_frame(sock)
    assert code == 0x10
    opened = OpenFrame(*fields)
    assert opened.max_frame_size and opened.channel_max is not None  # pyamqp needs both
    return sock


def test_sasl_plain_open_and_heartbeats(eventhubs: EventHubsEndpoint) -> None:
    sock = open_connection(eventhubs, idle_timeout_ms=400)
    with sock:
        started = time.monotonic()
        frame_type, code, _ = read_frame(sock)  # the endpoint keeps the connection alive for us
        took = time.monotonic() - started
        print(f"\nfirst heartbeat after {took:.3f} s (idle timeout 0.4 s)")
        assert code is None and frame_type == 0
        # Measured 0.10-0.11 s; the bound is generous: what it catches is an endpoint that sends
        # none, whose read would wait for the socket's own 5 s timeout.
        assert took < 2.0, took


@pytest.mark.parametrize("eventhubs", [{"idle_timeout_s": 0.3}], indirect=True)
def test_silent_client_is_closed_after_the_idle_timeout(eventhubs: EventHubsEndpoint) -> None:
    sock = open_connection(eventhubs, idle_timeout_ms=None)
    with sock:
        _, code, fields = read_frame(sock)  # nothing sent by us for 2 x 0.3 s: close with an error
        assert code == 0x18 and fields[0] is not None
        assert eventhubs.connection_count() in (0, 1)


@pytest.mark.parametrize("eventhubs", [{"idle_timeout_s": 0.3}], indirect=True)
def test_idle_sdk_client_is_closed_and_reconnects_on_next_use(eventhubs: EventHubsEndpoint) -> None:
    with EventHubProducerClient.from_connection_string(eventhubs.connection_string) as client:
        client.get_partition_ids()
        # The sync producer sends no heartbeat while unused: closed after 2 x 0.3 s.
        assert wait_until(lambda: eventhubs.connection_count() == 0, timeout=10)
        assert client.get_partition_properties("0")["is_empty"] is True


def test_unknown_hub_is_reported_by_management(eventhubs: EventHubsEndpoint) -> None:
    wrong = eventhubs.connection_string.replace("EntityPath=eventhub", "EntityPath=nope")
    with EventHubProducerClient.from_connection_string(wrong, retry_total=0) as client:
        with pytest.raises(EventHubError):
            client.get_partition_ids()
