"""Connection strings that can never work, found at load time instead of by the first request.

A malformed string, a storage account key that is not base64, a string for the other service, or an
`EntityPath` that names another hub than `eventhub.name` fail every request forever (the SDKs report
them as `ConnectError`, `AzureSigningError` or `unauthorized`, retried every few seconds). These
checks turn them into a configuration error that names the key and the problem and never quotes the
secret: messages only name the connection string's keys (`AccountKey`, `EntityPath`, ...), and the
hub names of `EntityPath`/`eventhub.name`, which are not secret.

The Event Hubs rules are those of `azure-eventhub`'s own parser (`Endpoint` with a host, `SharedAccessKeyName`
with `SharedAccessKey`, or a `SharedAccessSignature`), the storage rules those of `azure-storage-blob`'s
(an account name or a blob endpoint, and a key or a SAS), plus the key's base64, which the storage SDK only
finds when it signs the first request.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from base64 import b64decode
from urllib.parse import urlparse

from azure.core.utils import parse_connection_string

from consumer.errors import scrub_secrets

#: Keys that only a storage account's connection string has.
_STORAGE_KEYS = frozenset({"accountname", "accountkey", "defaultendpointsprotocol", "endpointsuffix", "blobendpoint",
                           "queueendpoint", "tableendpoint", "fileendpoint", "usedevelopmentstorage"})
#: Keys that only an Event Hubs (Service Bus) connection string has.
_EVENTHUB_KEYS = frozenset({"endpoint", "sharedaccesskeyname", "sharedaccesskey", "entitypath",
                            "usedevelopmentemulator"})


def connection_string_parts(value: str, key: str = "the connection string") -> dict[str, str]:
    """`Endpoint=sb://...;EntityPath=hub` → {"endpoint": "sb://...", "entitypath": "hub"}: the `Key=value`
    pairs, keys lower-cased; ValueError naming `key` when it is not one (no value quoted)."""
    try:
        parts = parse_connection_string(value.strip(), case_sensitive_keys=False)
    except ValueError as exc:
        # azure-core's messages: "Connection string is either blank or malformed." or
        # "Duplicate key in connection string: <key>" (a key name, never a value).
        raise ValueError(f"{key} is not a connection string ({str(exc).rstrip('.')}): "
                         "expected Key=value pairs separated by ';'") from None
    return {name.lower(): part.strip() for name, part in parts.items()}


def check_eventhub(value: str, hub_name: str | None, key: str = "eventhub.connection_string") -> dict[str, str]:
    """Raise ValueError naming `key` when `value` can never connect to `hub_name`; else its parts."""
    parts = connection_string_parts(value, key)
    if "endpoint" not in parts and parts.keys() & _STORAGE_KEYS:
        raise ValueError(f"{key} is a storage account connection string (it has "
                         f"{_named(parts.keys() & _STORAGE_KEYS)}); it needs the Event Hubs namespace's or hub's: "
                         "Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=...;"
                         "SharedAccessKey=...[;EntityPath=<hub>] (portal: the hub > Shared access policies)")
    if "endpoint" not in parts:
        raise ValueError(f"{key} has no Endpoint=sb://... part")
    endpoint = urlparse(parts["endpoint"])
    if not endpoint.netloc:
        raise ValueError(f"{key}: Endpoint is not a URL with a host, e.g. sb://<namespace>.servicebus.windows.net/")
    if endpoint.scheme.lower() not in ("sb", "amqps", "amqp"):
        raise ValueError(f"{key}: Endpoint must start with sb:// (it starts with {endpoint.scheme or 'no scheme'}://)")
    has_name, has_key = bool(parts.get("sharedaccesskeyname")), bool(parts.get("sharedaccesskey"))
    if has_name != has_key:
        raise ValueError(f"{key} has {'SharedAccessKeyName' if has_name else 'SharedAccessKey'} without "
                         f"{'SharedAccessKey' if has_name else 'SharedAccessKeyName'}; both are needed")
    if not has_key and not parts.get("sharedaccesssignature"):
        raise ValueError(f"{key} has no credential: it needs SharedAccessKeyName and SharedAccessKey "
                         "(or a SharedAccessSignature)")
    entity = parts.get("entitypath")
    if entity and hub_name and entity.lower() != hub_name.lower():
        raise ValueError(f"{key} has EntityPath={entity}, but eventhub.name is {hub_name}: a key of one hub "
                         "is refused by every other; remove eventhub.name or use the connection string of "
                         f"{hub_name}")
    return parts


def check_namespace(value: str, key: str = "eventhub.fully_qualified_namespace") -> None:
    """Raise ValueError naming `key` unless `value` is a host name (the SDK uses it as one, as it is)."""
    if "=" in value or ";" in value:
        raise ValueError(f"{key} looks like a connection string (it has '=' or ';'): put a connection string in "
                         "eventhub.connection_string (a secret: from the environment), or give the namespace's host "
                         "name here, e.g. my-namespace.servicebus.windows.net")
    if "://" in value or "/" in value or not value.strip() or any(c.isspace() for c in value.strip()):
        raise ValueError(f"{key} must be the namespace's host name, e.g. my-namespace.servicebus.windows.net "
                         "(no sb://, no path, no spaces)")
    host = value.strip().rpartition(":")[0] if _HOST_PORT.fullmatch(value.strip()) else value.strip()
    if "." not in host and not is_local_host(host):
        # A short name is a namespace's name (the KEDA step asks for it): the host name adds the suffix.
        # Quoted only when it has a host name's shape (never a secret: those are refused before).
        hint = f"did you mean {host}.servicebus.windows.net?" if _LABEL.fullmatch(host) else \
            "e.g. my-namespace.servicebus.windows.net"
        raise ValueError(f"{key} must be the fully qualified host name of the namespace, not its short name: "
                         f"{hint} (portal: the namespace's Overview > Host name)")


_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOST_PORT = re.compile(r"[^:\[\]]+:\d{1,5}")


def is_local_host(host: str, single_label: bool = False) -> bool:
    """A loopback address or `localhost` (a local endpoint, Azurite); with `single_label`, also a name
    without a dot, which only a local network resolves (`azurite` in a compose file)."""
    host = host.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost") or (single_label and bool(host) and "." not in host)


def is_local_eventhub(connection_string: str | None, namespace: str | None) -> bool:
    """Whether the hub is a local development endpoint (the demo's, the tests', the Event Hubs emulator):
    `UseDevelopmentEmulator=true` or a loopback host in the connection string, else a loopback namespace.
    A connection string that does not parse is not local."""
    if connection_string:
        try:
            parts = connection_string_parts(connection_string)
        except ValueError:
            return False
        host = urlparse(parts.get("endpoint", "")).hostname or ""
        return parts.get("usedevelopmentemulator", "").lower() == "true" or is_local_host(host)
    return is_local_host(urlparse(f"//{namespace or ''}").hostname or "")


def check_account_url(value: str, key: str = "checkpoint_store.account_url") -> None:
    """Raise ValueError naming `key` unless `value` is the https URL of a storage account (blob endpoint)
    with nothing after the host: no path (the container is a key of its own), no query (a SAS token is a
    secret; user information is refused as a secret by every plain setting). http:// is accepted for a
    local host only (Azurite), which may carry the account as its one path segment
    (`http://127.0.0.1:10000/devstoreaccount1`)."""
    url = urlparse(value.strip())
    example = "e.g. https://mystorageaccount.blob.core.windows.net"
    if url.scheme.lower() not in ("https", "http") or not url.hostname:
        raise ValueError(f"{key} must be an https:// URL of the storage account, {example} (portal: the storage "
                         "account > Endpoints > Blob service)")
    local = is_local_host(url.hostname, single_label=True)
    if url.scheme.lower() == "http" and not local:
        raise ValueError(f"{key} must use https:// (http:// is accepted for a local development host only, such as "
                         f"Azurite on 127.0.0.1): {example}")
    if url.query or url.fragment:
        raise ValueError(f"{key} has a query or fragment (a SAS token is a secret: use "
                         "checkpoint_store.connection_string with SharedAccessSignature, or Azure AD): give the "
                         f"account's URL alone, {example}")
    segments = [part for part in url.path.split("/") if part]
    if len(segments) > (1 if local else 0):
        raise ValueError(f"{key} has a path: give the account's URL alone ({example}) and put the container in "
                         "checkpoint_store.container")


def check_storage(value: str, key: str = "checkpoint_store.connection_string") -> dict[str, str]:
    """Raise ValueError naming `key` when `value` can never authenticate to a storage account; else its parts."""
    parts = connection_string_parts(value, key)
    if not parts.keys() & _STORAGE_KEYS and parts.keys() & _EVENTHUB_KEYS:
        raise ValueError(f"{key} is an Event Hubs connection string (it has "
                         f"{_named(parts.keys() & _EVENTHUB_KEYS)}); it needs the storage account's: "
                         "DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;"
                         "EndpointSuffix=core.windows.net "
                         "(portal: the storage account > Access keys)")
    if parts.get("usedevelopmentstorage", "").lower() == "true":
        return parts
    if not parts.get("accountname") and not parts.get("blobendpoint"):
        raise ValueError(f"{key} has neither AccountName nor BlobEndpoint")
    blob_endpoint = parts.get("blobendpoint")
    if blob_endpoint:
        url = urlparse(blob_endpoint)
        if url.scheme.lower() not in ("http", "https") or not url.netloc:
            raise ValueError(f"{key}: BlobEndpoint is not an http(s) URL with a host")
    account_key = parts.get("accountkey")
    if account_key is not None:
        if not parts.get("accountname"):
            raise ValueError(f"{key} has AccountKey without AccountName; both are needed")
        try:
            decoded = b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not decoded:
            raise ValueError(f"{key}: AccountKey is not valid base64 (a storage account key is 88 characters of "
                             "base64 ending in '=='); copy it again from the storage account's Access keys")
    elif not parts.get("sharedaccesssignature"):
        raise ValueError(f"{key} has no credential: it needs AccountKey (with AccountName) or a SharedAccessSignature")
    return parts


def _named(keys: set[str]) -> str:
    names = {"accountname": "AccountName", "accountkey": "AccountKey",
             "defaultendpointsprotocol": "DefaultEndpointsProtocol", "endpointsuffix": "EndpointSuffix",
             "blobendpoint": "BlobEndpoint", "queueendpoint": "QueueEndpoint", "tableendpoint": "TableEndpoint",
             "fileendpoint": "FileEndpoint", "usedevelopmentstorage": "UseDevelopmentStorage",
             "endpoint": "Endpoint", "sharedaccesskeyname": "SharedAccessKeyName", "sharedaccesskey": "SharedAccessKey",
             "entitypath": "EntityPath", "usedevelopmentemulator": "UseDevelopmentEmulator"}
    return ", ".join(sorted(names[k] for k in keys))


def secret_kind(value: str) -> str | None:
    """What credential `value` holds, in words, if it looks like one: "a connection string", "a SAS
    token", "a bearer token", "a URL with user information ...", "a key"; None when it does not. The
    rule is the log scrubber's (`consumer.errors.scrub_secrets`): what would be redacted in a log line
    is refused in a setting that is printed. Never returns any part of `value`."""
    if scrub_secrets(value) == value:
        return None
    lowered = value.lower()
    if "bearer" in lowered or lowered.lstrip().startswith("eyj"):
        return "a bearer token"
    if "sig=" in lowered or "sig%3d" in lowered or "sharedaccesssignature" in lowered:
        return "a SAS token"
    if "://" in value and "@" in value and "://***@" in scrub_secrets(value):
        return "a URL with user information (a user and password)"
    if "=" in value and ";" in value:
        try:
            if connection_string_parts(value).keys() & (_STORAGE_KEYS | _EVENTHUB_KEYS):
                return "a connection string"
        except ValueError:
            pass
    return "a key"
