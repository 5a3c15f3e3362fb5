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
from base64 import b64decode
from urllib.parse import urlparse

from azure.core.utils import parse_connection_string

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


def check_storage(value: str, key: str = "checkpoint_store.connection_string") -> dict[str, str]:
    """Raise ValueError naming `key` when `value` can never authenticate to a storage account; else its parts."""
    parts = connection_string_parts(value, key)
    if not parts.keys() & _STORAGE_KEYS and parts.keys() & _EVENTHUB_KEYS:
        raise ValueError(f"{key} is an Event Hubs connection string (it has "
                         f"{_named(parts.keys() & _EVENTHUB_KEYS)}); it needs the storage account's: "
                         "DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;EndpointSuffix=core.windows.net "
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
    names = {"accountname": "AccountName", "accountkey": "AccountKey", "defaultendpointsprotocol": "DefaultEndpointsProtocol",
             "endpointsuffix": "EndpointSuffix", "blobendpoint": "BlobEndpoint", "queueendpoint": "QueueEndpoint",
             "tableendpoint": "TableEndpoint", "fileendpoint": "FileEndpoint", "usedevelopmentstorage": "UseDevelopmentStorage",
             "endpoint": "Endpoint", "sharedaccesskeyname": "SharedAccessKeyName", "sharedaccesskey": "SharedAccessKey",
             "entitypath": "EntityPath", "usedevelopmentemulator": "UseDevelopmentEmulator"}
    return ", ".join(sorted(names[k] for k in keys))
