"""The local endpoint's AMQP-over-WebSocket listener: the unmodified async SDK talks to it through its
WebSocket transport (aiohttp), over TLS with a certificate of a CA made here and trusted only through
`connection_verify`, or over plain ws:// with the emulator's connection string; `emulator` serves it."""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.eventhub import TransportType
from azure.eventhub.aio import EventHubConsumerClient

from acs_sms_devtools.endpoint_process import EndpointProcess
from acs_sms_devtools.eventhubs import EventHubsEndpoint
from acs_sms_devtools.eventhubs.websocket import PATH, SUBPROTOCOL
from acs_sms_devtools.tls import Certificates, make_certificates
from tests.lines import Lines

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_endpoint(certificates: Certificates) -> Any:
    endpoint = EventHubsEndpoint(partitions=2, websocket_port=0, certfile=str(certificates.cert),
                                 keyfile=str(certificates.key)).start()
    yield endpoint
    endpoint.close()


async def receive(connection_string: str, address: str, count: int, **options: Any) -> list[str]:
    """`count` event bodies of partition 0, read through the SDK's WebSocket transport."""
    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default",
                                                           transport_type=TransportType.AmqpOverWebsocket,
                                                           custom_endpoint_address=address, **options)
    got: list[str] = []
    done = asyncio.Event()

    async def on_event(_: Any, event: Any) -> None:
        got.append(event.body_as_str())
        if len(got) >= count:
            done.set()

    async with client:
        assert await client.get_partition_ids() == ["0", "1"]
        task = asyncio.create_task(client.receive(on_event, partition_id="0", starting_position="-1"))
        try:
            await asyncio.wait_for(done.wait(), 20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return got


async def test_the_sdk_reads_over_wss_trusting_the_test_ca(tls_endpoint: Any, certificates: Certificates) -> None:
    tls_endpoint.publish("0", [b"one", b"two", b"three"])
    assert "UseDevelopmentEmulator" not in tls_endpoint.websocket_connection_string  # that would turn TLS off
    got = await receive(tls_endpoint.websocket_connection_string, tls_endpoint.websocket_address, 3,
                        connection_verify=str(certificates.ca))
    assert got == ["one", "two", "three"]


async def test_without_the_ca_the_certificate_is_refused(tls_endpoint: Any) -> None:
    client = EventHubConsumerClient.from_connection_string(tls_endpoint.websocket_connection_string,
                                                           consumer_group="$Default", retry_total=0,
                                                           transport_type=TransportType.AmqpOverWebsocket,
                                                           custom_endpoint_address=tls_endpoint.websocket_address)
    async with client:
        with pytest.raises(Exception) as info:
            await client.get_partition_ids()
    causes, error = [], info.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in causes), causes


@pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")  # the SDK's call, for ws://
async def test_plain_ws_with_the_emulator_connection_string() -> None:
    endpoint = EventHubsEndpoint(partitions=2, websocket_port=0).start()
    try:
        endpoint.publish("0", [b"plain"])
        assert endpoint.websocket_connection_string.endswith(";UseDevelopmentEmulator=true")
        assert await receive(endpoint.websocket_connection_string, endpoint.websocket_address, 1) == ["plain"]
    finally:
        endpoint.close()


async def test_a_websocket_without_the_amqp_subprotocol_is_refused(tls_endpoint: Any, certificates: Certificates) -> None:
    context = ssl.create_default_context(cafile=str(certificates.ca))
    url = f"wss://127.0.0.1:{tls_endpoint.websocket_port}{PATH}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await session.ws_connect(url, ssl=context, protocols=["other"])
        assert info.value.status == 400
        async with session.ws_connect(url, ssl=context, protocols=[SUBPROTOCOL]) as ws:
            assert ws.protocol == SUBPROTOCOL


def test_the_child_process_endpoint_reports_its_websocket_listener(certificates: Certificates) -> None:
    endpoint = EndpointProcess(sys.executable, partitions=1, websocket_port=0, certfile=str(certificates.cert),
                               keyfile=str(certificates.key)).start()
    try:
        assert endpoint.websocket_port and endpoint.websocket_port != endpoint.port
        assert endpoint.websocket_address == f"sb://127.0.0.1:{endpoint.websocket_port}"
        assert endpoint.websocket_connection_string.startswith("Endpoint=sb://127.0.0.1/;")
    finally:
        endpoint.close()


def test_emulator_serves_wss_with_the_given_certificate(certificates: Certificates) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from acs_sms_devtools.eventhubs import main; sys.exit(main())",
         "--port", "0", "--partitions", "2", "--websocket-port", "0", "--tls-cert", str(certificates.cert),
         "--tls-key", str(certificates.key)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = Lines(process)
    try:
        match = lines.until(r"AMQP over WebSocket: wss://127\.0\.0\.1:(\d+)/\$servicebus/websocket", 60)
        address = f"sb://127.0.0.1:{match.group(1)}"
        connection_string = "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=eventhub"
        client = EventHubConsumerClient.from_connection_string(
            connection_string, consumer_group="$Default", transport_type=TransportType.AmqpOverWebsocket,
            custom_endpoint_address=address, connection_verify=str(certificates.ca))

        async def ids() -> list[str]:
            async with client:
                return await client.get_partition_ids()

        assert asyncio.run(ids()) == ["0", "1"]
        process.send_signal(signal.SIGTERM)
        lines.rest(15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, lines.seen


@pytest.mark.parametrize("args", [["--tls-cert", "c.pem"], ["--tls-cert", "c.pem", "--tls-key", "k.pem"]])
def test_emulator_tls_arguments_are_checked(args: list[str]) -> None:
    from acs_sms_devtools.eventhubs import main

    with pytest.raises(SystemExit) as info:
        main(["--port", "0", *args])
    assert info.value.code == 2
