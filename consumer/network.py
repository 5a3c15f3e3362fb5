"""How the SDK clients reach Event Hubs and Blob storage: the keyword arguments built from `network`
and `eventhub.transport` / `eventhub.custom_endpoint_address` (docs/networks.md). Pure: no I/O.

Every client is built with these, so one proxy and one CA bundle hold for all of them:
- `eventhub_options`: the EventHubConsumerClient (`transport_type`, `http_proxy`,
  `custom_endpoint_address`, `connection_verify`). Its WebSocket transport (aiohttp) reads no
  environment variable: a proxy for Event Hubs must be configured here.
- `storage_options`: the checkpoint store's and the dead-letter/readiness BlobServiceClients (azure-core:
  `proxies`, `connection_verify`). Without `network.proxy` azure-core's aiohttp transport honours
  `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment, as azure-identity's credentials do.
- `credential_options`: DefaultAzureCredential (Azure AD tokens, azure-core too): the proxy for
  `https://` only, so that Azure AD (`login.microsoftonline.com`, or the sovereign cloud's
  `AZURE_AUTHORITY_HOST`) is reached through it while managed identity's IMDS endpoint
  (`http://169.254.169.254`, on the node, which a proxy cannot reach) is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from azure.eventhub import TransportType

from consumer.config import ProxySettings, Settings


def proxy_url(proxy: ProxySettings) -> str:
    """`http://[user:password@]host:port` (user and password percent-encoded), for azure-core."""
    assert proxy.host is not None and proxy.port is not None
    credentials = ""
    if proxy.username:
        credentials = f"{quote(proxy.username, safe='')}:{quote(_password(proxy), safe='')}@"
    return f"http://{credentials}{proxy.host}:{proxy.port}"


def _password(proxy: ProxySettings) -> str:
    """The proxy's password ("" when only a user is set)."""
    return proxy.password.get_secret_value() if proxy.password is not None else ""


def eventhub_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of the EventHubConsumerClient for the transport, proxy, endpoint and CA."""
    hub, network = settings.eventhub, settings.network
    options: dict[str, Any] = {}
    if hub.transport == "websocket":
        options["transport_type"] = TransportType.AmqpOverWebsocket
    if hub.custom_endpoint_address:
        options["custom_endpoint_address"] = hub.custom_endpoint_address
    if network.ca_bundle:
        options["connection_verify"] = network.ca_bundle
    proxy = network.proxy
    if proxy.enabled:
        # The SDK hands `proxy_hostname:proxy_port` to aiohttp as the proxy URL: it needs its scheme.
        options["http_proxy"] = {"proxy_hostname": f"http://{proxy.host}", "proxy_port": proxy.port}
        if proxy.username:
            options["http_proxy"]["username"] = proxy.username
            options["http_proxy"]["password"] = _password(proxy)
    return options


def storage_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of every BlobServiceClient / BlobCheckpointStore for the proxy and CA."""
    return _azure_core_options(settings, ("http", "https"))


def credential_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of DefaultAzureCredential: the proxy for https:// only (not IMDS), and the CA."""
    return _azure_core_options(settings, ("https",))


def _azure_core_options(settings: Settings, schemes: tuple[str, ...]) -> dict[str, Any]:
    network = settings.network
    options: dict[str, Any] = {}
    if network.proxy.enabled:
        url = proxy_url(network.proxy)
        options["proxies"] = dict.fromkeys(schemes, url)
    if network.ca_bundle:
        options["connection_verify"] = network.ca_bundle
    return options


#: The proxy variables azure-core (Blob storage, Azure AD) reads and the Event Hubs WebSocket transport does not.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def unused_proxy_variables(settings: Settings, environ: Mapping[str, str]) -> str | None:
    """A warning when the environment names a proxy that Event Hubs will not use (no `network.proxy`),
    so that a half-proxied set-up (storage through the proxy, Event Hubs direct) is said, not guessed."""
    named = [name for name in PROXY_VARIABLES if environ.get(name, "").strip()]
    if not named or settings.network.proxy.enabled:
        return None
    return (f"{named[0]} is set: Blob storage and Azure AD use it, Event Hubs does not; to send Event Hubs through "
            "the proxy too, set network.proxy and eventhub.transport: websocket (docs/networks.md)")
