"""`run` behind a corporate proxy: AMQP over WebSocket with TLS through a real HTTP CONNECT proxy
(tinyproxy) to the local Event Hubs endpoint, and Blob storage (Azurite) through the same proxy.

The endpoint's WebSocket listener presents a certificate of a CA made for the test, trusted only
through `network.ca_bundle`; `eventhub.custom_endpoint_address` points the SDK at the listener's port.
The proxy's log is the proof that both upstreams were reached through it.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

from acs_sms_devtools.tls import Certificates, make_certificates
from acs_sms_devtools.traffic import generate_corpus
from tests.e2e.support import ConsumerProcess, Scraper, free_port, write_config
from tests.e2e.tinyproxy import Tinyproxy

HUB_HOST = "127.0.0.1"
PROXY_USER = "acs-consumer"
PROXY_PASSWORD = "pr0xy-s3cret.x"  # tinyproxy's BasicAuth syntax: no spaces


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path / "tls")


@pytest.fixture
def endpoint(eventhubs_factory: Any, certificates: Certificates) -> Any:
    """The local endpoint with a TLS WebSocket listener (the plain AMQP port is not used here)."""
    return eventhubs_factory(partitions=2, websocket_port=0, certfile=str(certificates.cert),
                             keyfile=str(certificates.key))


def proxied_config(tmp_path: Path, endpoint: Any, storage: str, container: str, proxy: Tinyproxy,
                   certificates: Certificates, port: int, **proxy_keys: str) -> Path:
    return write_config(tmp_path / "config.yaml", endpoint.websocket_connection_string, endpoint.hub.name, storage,
                        container, port,
                        eventhub__transport="websocket",
                        eventhub__custom_endpoint_address=endpoint.websocket_address,
                        network__proxy={"host": f"http://{HUB_HOST}", "port": proxy.port, **proxy_keys},
                        network__ca_bundle=str(certificates.ca))


def checkpoints_written(storage: str, container: str, hub: str) -> dict[str, str]:
    """partition → sequence number of the checkpoint blobs (read directly, not through the proxy)."""
    service = BlobServiceClient.from_connection_string(storage)
    try:
        prefix = f"{HUB_HOST}/{hub}/$default/checkpoint/"
        return {blob.name.rsplit("/", 1)[1]: blob.metadata["sequencenumber"]
                for blob in service.get_container_client(container).list_blobs(name_starts_with=prefix,
                                                                               include=["metadata"])}
    finally:
        service.close()


def test_run_over_websocket_through_a_proxy_counts_and_checkpoints(endpoint: Any, certificates: Certificates,
                                                                    azurite: Any, blob_container: str,
                                                                    tmp_path: Path, monkeypatch: Any) -> None:
    bodies = generate_corpus(200, records_per_body=10, seed=30)
    for index, partition in enumerate(endpoint.partition_ids):
        endpoint.publish(partition, bodies[index::2])
    # The proxy asks for a user and password (407 without); the password comes from a secret file.
    password_file = tmp_path / "proxy-password"
    password_file.write_text(PROXY_PASSWORD + "\n")
    monkeypatch.setenv("ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE", str(password_file))
    # network.proxy wins over the environment: a NO_PROXY naming the upstreams bypasses nothing.
    monkeypatch.setenv("NO_PROXY", f"{HUB_HOST},localhost")
    with Tinyproxy(tmp_path, connect_ports=[endpoint.websocket_port], basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        port = free_port()
        config = proxied_config(tmp_path, endpoint, azurite.connection_string, blob_container, proxy, certificates, port,
                                username=PROXY_USER)
        consumer = ConsumerProcess(config, port, tmp_path / "run.log").start()
        scraper = Scraper(consumer, interval=0.3).start()
        try:
            consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 40, "readiness")
            consumer.wait_until(lambda: consumer.total("acs_consumer_events_total") == len(bodies), 40, "every event")
            assert consumer.total("acs_consumer_records_total") == 10 * len(bodies)
            last = {p: str(endpoint.event_count(p) - 1) for p in endpoint.partition_ids}
            consumer.wait_until(lambda: checkpoints_written(azurite.connection_string, blob_container,
                                                            endpoint.hub.name) == last, 30, "checkpoints at the last events")
        finally:
            scraper.stop()
            code = consumer.stop(signal.SIGTERM)
        assert code == 0, consumer.logs()[-3000:]
        requests = proxy.requests()
    # Both upstreams through the proxy: the WebSocket tunnel to the endpoint, plain HTTP to Azurite.
    assert f"CONNECT {HUB_HOST}:{endpoint.websocket_port} HTTP/1.1" in requests, requests
    assert any(r.startswith(f"PUT {azurite.blob_endpoint}/{blob_container}/") and "/checkpoint/" in r
               for r in requests), requests
    # The start-up line shows the proxy settings, the password as ***; no line holds the password.
    logs = consumer.logs()
    started = next(json.loads(line) for line in logs.splitlines() if '"starting acs-sms-consumer"' in line)
    assert started["config"]["network"]["proxy"] == {"host": HUB_HOST, "port": proxy.port, "username": PROXY_USER,
                                                     "password": "***"}
    assert PROXY_PASSWORD not in logs


def test_a_proxy_that_refuses_the_tunnel_is_named_in_readiness(endpoint: Any, certificates: Certificates,
                                                               azurite: Any, blob_container: str,
                                                               tmp_path: Path) -> None:
    refused_port = endpoint.websocket_port
    with Tinyproxy(tmp_path, connect_ports=[443]) as proxy:  # CONNECT to any other port: 403
        port = free_port()
        config = proxied_config(tmp_path, endpoint, azurite.connection_string, blob_container, proxy, certificates, port)
        consumer = ConsumerProcess(config, port, tmp_path / "run.log").start()
        try:
            def eventhub_check() -> dict[str, Any]:
                status, body = consumer.get("/readyz")
                return {"status": status, **json.loads(body)["checks"]["eventhub"]}

            consumer.wait_until(lambda: "proxy" in eventhub_check().get("detail", ""), 40, "a readiness detail naming the proxy")
            check = eventhub_check()
            assert check["status"] == 503 and check["ok"] is False
            assert "403" in check["detail"], check
        finally:
            consumer.stop(signal.SIGTERM)
        assert f"CONNECT {HUB_HOST}:{refused_port} HTTP/1.1" in proxy.requests()


async def test_azure_ad_token_requests_go_through_the_proxy(tmp_path: Path, monkeypatch: Any) -> None:
    """Workload identity's token exchange (the credential `run` builds) is tunnelled through the proxy.
    The authority is `AZURE_AUTHORITY_HOST`, as in a sovereign cloud (here a closed local port: the
    exchange fails after the proxy logged the tunnel it was asked for)."""
    from consumer.app import Service
    from consumer.config import Settings

    token_file = tmp_path / "federated-token"
    token_file.write_text("header.payload.signature")
    authority_port = free_port()
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000002")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"https://{HUB_HOST}:{authority_port}")
    with Tinyproxy(tmp_path, connect_ports=[]) as proxy:  # no ConnectPort line: every port allowed
        settings = Settings.model_validate({
            "eventhub": {"fully_qualified_namespace": "ns.servicebus.windows.net", "name": "hub", "transport": "websocket",
                         "consumer_group": "acs-sms-consumer"},
            "checkpoint_store": {"account_url": "https://account.blob.core.windows.net"},
            "network": {"proxy": {"host": HUB_HOST, "port": proxy.port}},
        })
        store, service, credential = Service(settings)._storage()
        try:
            with pytest.raises(Exception, match="WorkloadIdentityCredential"):
                await credential.get_token("https://storage.azure.com/.default")
        finally:
            for client in (credential, store, service):
                await client.close()
        assert f"CONNECT {HUB_HOST}:{authority_port} HTTP/1.1" in proxy.requests()
