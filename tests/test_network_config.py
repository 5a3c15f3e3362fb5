"""`eventhub.transport`, `eventhub.custom_endpoint_address` and `network` (proxy, CA bundle): validation,
redaction in check-config, and what the Event Hubs and Blob clients are built with (consumer/network.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.eventhub import TransportType

from acs_sms_devtools.tls import make_certificates
from consumer.app import Service
from consumer.config import ConfigError, Settings, load_settings
from consumer.eventhub import Receiver
from consumer.metrics import Metrics
from consumer.network import credential_options, eventhub_options, storage_options
from consumer.pipeline import Pipeline

REPO = Path(__file__).resolve().parent.parent
EH = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey=c2VjcmV0LWtleQ==;EntityPath=acs"
ST = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0LXN0b3JhZ2Uta2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
PASSWORD = "Pr0xy p@ss:w/rd%"  # characters a URL must escape


@pytest.fixture(scope="module")
def ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_certificates(tmp_path_factory.mktemp("tls")).ca)


def config(tmp_path: Path, eventhub: dict[str, Any] | None = None, network: dict[str, Any] | None = None) -> Path:
    data: dict[str, Any] = {"eventhub": {"connection_string": EH, "consumer_group": "acs-sms-consumer", **(eventhub or {})},
                            "checkpoint_store": {"connection_string": ST}}
    if network is not None:
        data["network"] = network
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def proxied(tmp_path: Path, ca_bundle: str, **proxy: Any) -> Path:
    return config(tmp_path, {"transport": "websocket", "custom_endpoint_address": "10.1.2.3:443"},
                  {"proxy": {"host": "http://proxy.corp.example", "port": 3128, "username": "svc@corp", **proxy},
                   "ca_bundle": ca_bundle})


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ or {})
    return str(info.value)


# --- what the clients get ----------------------------------------------------------------------


def test_by_default_the_clients_get_nothing_new(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path), {})
    assert settings.eventhub.transport == "amqp"
    assert eventhub_options(settings) == {}
    assert storage_options(settings) == {}
    assert credential_options(settings) == {}


def test_websocket_proxy_endpoint_and_ca_reach_both_clients(tmp_path: Path, ca_bundle: str) -> None:
    settings = load_settings(proxied(tmp_path, ca_bundle), {"ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD": PASSWORD})
    assert eventhub_options(settings) == {
        "transport_type": TransportType.AmqpOverWebsocket,
        "custom_endpoint_address": "sb://10.1.2.3:443",
        "connection_verify": ca_bundle,
        # The SDK joins these as `proxy_hostname:proxy_port` for aiohttp, which needs the scheme.
        "http_proxy": {"proxy_hostname": "http://proxy.corp.example", "proxy_port": 3128,
                       "username": "svc@corp", "password": PASSWORD},
    }
    url = "http://svc%40corp:Pr0xy%20p%40ss%3Aw%2Frd%25@proxy.corp.example:3128"
    assert storage_options(settings) == {"proxies": {"http": url, "https": url}, "connection_verify": ca_bundle}
    # Azure AD is https://; managed identity's IMDS (http://169.254.169.254) stays off the proxy.
    assert credential_options(settings) == {"proxies": {"https": url}, "connection_verify": ca_bundle}


def test_a_proxy_without_user_has_no_credentials(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, {"transport": "websocket"}, {"proxy": {"host": "proxy", "port": 8080}}), {})
    assert eventhub_options(settings)["http_proxy"] == {"proxy_hostname": "http://proxy", "proxy_port": 8080}
    assert storage_options(settings)["proxies"]["https"] == "http://proxy:8080"


def test_the_event_hubs_client_of_run_is_built_with_them(tmp_path: Path, ca_bundle: str) -> None:
    settings = load_settings(proxied(tmp_path, ca_bundle, password=PASSWORD), {})
    metrics = Metrics(settings.pipeline.buckets, "test")
    receiver = Receiver(settings, Pipeline(settings.pipeline, metrics.domain), metrics, None, None)
    sdk = receiver.client._config
    assert sdk.transport_type == TransportType.AmqpOverWebsocket
    assert sdk.http_proxy["proxy_hostname"] == "http://proxy.corp.example"
    assert sdk.custom_endpoint_address.startswith("sb://10.1.2.3:443")
    assert sdk.connection_verify == ca_bundle


def test_the_blob_clients_of_run_are_built_with_them(tmp_path: Path, ca_bundle: str) -> None:
    settings = load_settings(proxied(tmp_path, ca_bundle, password=PASSWORD), {})
    store, service, _ = Service(settings)._storage()
    try:
        for client in (store._container_client, service):
            assert client._config.proxy_policy.proxies["https"].endswith("@proxy.corp.example:3128")
            assert client._pipeline._transport.connection_config.verify == ca_bundle
    finally:
        asyncio.run(_close(store, service))


async def _close(*clients: Any) -> None:
    for client in clients:
        await client.close()


# --- validation ------------------------------------------------------------------------------


def test_a_bare_custom_endpoint_address_gets_its_scheme(tmp_path: Path) -> None:
    settings = load_settings(config(tmp_path, {"custom_endpoint_address": "eh.privatelink.corp:5671"}), {})
    assert settings.eventhub.custom_endpoint_address == "sb://eh.privatelink.corp:5671"


@pytest.mark.parametrize(("eventhub", "network", "key", "message"), [
    ({"transport": "tcp"}, None, "eventhub.transport", "'amqp' or 'websocket'"),
    ({}, {"proxy": {"host": "proxy", "port": 3128}}, "(top level)", "network.proxy needs eventhub.transport: websocket"),
    ({"transport": "websocket"}, {"proxy": {"host": "https://proxy", "port": 3128}}, "network.proxy.host",
     "https:// proxies are not supported"),
    ({"transport": "websocket"}, {"proxy": {"host": "proxy:3128", "port": 3128}}, "network.proxy.host",
     "the port, user and password have keys of their own"),
    ({"transport": "websocket"}, {"proxy": {"host": "user:pw@proxy", "port": 3128}}, "network.proxy.host",
     "keys of their own"),
    ({"transport": "websocket"}, {"proxy": {"host": "proxy"}}, "network.proxy", "network.proxy.port is required"),
    ({"transport": "websocket"}, {"proxy": {"host": "proxy", "port": 70000}}, "network.proxy.port", "65535"),
    ({"transport": "websocket"}, {"proxy": {"port": 3128}}, "network.proxy", "need network.proxy.host"),
    ({"transport": "websocket"}, {"proxy": {"host": "proxy", "port": 3128, "password": "hunter2-secret"}},
     "network.proxy", "network.proxy.password needs network.proxy.username"),
    ({"custom_endpoint_address": "https://eh.corp"}, None, "eventhub.custom_endpoint_address", "sb://<host>[:<port>]"),
    ({"custom_endpoint_address": "sb://eh.corp/$servicebus/websocket"}, None, "eventhub.custom_endpoint_address", "no path"),
    ({"custom_endpoint_address": "sb://user@eh.corp"}, None, "eventhub.custom_endpoint_address", "user information"),
    ({"custom_endpoint_address": "sb://eh.corp:99999"}, None, "eventhub.custom_endpoint_address", "sb://<host>"),
    ({}, {"ca_bundle": "/nonexistent/ca.pem"}, "network.ca_bundle", "/nonexistent/ca.pem: no such file"),
])
def test_errors_name_the_key(tmp_path: Path, eventhub: dict[str, Any], network: dict[str, Any] | None, key: str,
                             message: str) -> None:
    error = error_of(config(tmp_path, eventhub, network))
    assert f"  {key}: " in error and message in error, error
    assert "hunter2-secret" not in error


def test_a_ca_bundle_without_certificates_is_refused(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    assert "holds no PEM CA certificate" in error_of(config(tmp_path, network={"ca_bundle": str(bundle)}))


# --- check-config --------------------------------------------------------------------------------


def check_config(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACS_SMS_CONSUMER_")}
    return subprocess.run([sys.executable, "-m", "consumer", "check-config", "--config", str(path)], capture_output=True,
                          text=True, env={**clean, **env}, timeout=60, cwd=REPO)


def test_check_config_redacts_the_proxy_password_from_a_secret_file(tmp_path: Path, ca_bundle: str) -> None:
    secret = tmp_path / "proxy-password"
    secret.write_text(PASSWORD + "\n")
    result = check_config(proxied(tmp_path, ca_bundle), {"ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE": str(secret)})
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert PASSWORD not in out and "Pr0xy" not in out
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert f"password: '***' # file {secret} named by ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD_FILE" in lines
    assert "transport: websocket # file " + str(tmp_path / "config.yaml") in lines
    assert "host: proxy.corp.example # file " + str(tmp_path / "config.yaml") in lines


def test_check_config_takes_the_password_from_the_secrets_directory(tmp_path: Path, ca_bundle: str) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "ACS_SMS_CONSUMER_NETWORK__PROXY__PASSWORD").write_text(PASSWORD)
    result = check_config(proxied(tmp_path, ca_bundle), {"ACS_SMS_CONSUMER_SECRETS_DIR": str(secrets)})
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert "password: '***'" in result.stdout


def test_check_config_exits_2_for_a_proxy_without_websocket(tmp_path: Path) -> None:
    result = check_config(config(tmp_path, network={"proxy": {"host": "proxy", "port": 3128}}), {})
    assert result.returncode == 2
    assert "network.proxy needs eventhub.transport: websocket" in result.stderr


def test_settings_without_network_section_validate(tmp_path: Path) -> None:
    assert Settings.model_validate({"eventhub": {"connection_string": EH, "consumer_group": "acs-sms-consumer"},
                                    "checkpoint_store": {"connection_string": ST}}).network.proxy.enabled is False


def test_check_config_warns_that_event_hubs_ignores_https_proxy(tmp_path: Path, ca_bundle: str) -> None:
    plain = check_config(config(tmp_path), {"HTTPS_PROXY": "http://proxy.corp.example:3128"})
    assert plain.returncode == 0, plain.stderr
    assert "# warning: HTTPS_PROXY is set: Blob storage and Azure AD use it, Event Hubs does not" in plain.stderr
    configured = check_config(proxied(tmp_path, ca_bundle, password=PASSWORD),
                              {"HTTPS_PROXY": "http://proxy.corp.example:3128"})
    assert configured.returncode == 0 and "warning" not in configured.stderr
