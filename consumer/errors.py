"""What went wrong, in words an operator acts on: the error kind of an Event Hubs or storage failure.

`classify(error)` maps an exception of the Event Hubs SDK (its exception classes and the AMQP error
condition it carries), of the storage SDK (the HTTP status) or of the network to one kind of a small,
fixed vocabulary — the `kind` label of `acs_consumer_errors_total`, the readiness detail and the log
field — so that a stolen partition (normal during a rebalance) is not mistaken for a lost connection,
and a wrong key or hub name is named as such (each kind, its cause, and what to do):

- `partition_stolen`: `amqp:link:stolen` (a receiver with a higher owner level took the partition) or the
  checkpoint store saw the ownership lost. To do: nothing: rebalancing between replicas.
- `connection_lost`: an open connection or link dropped (`ConnectionLostError`, a `ConnectError` after a
  reset, `detach-forced`, timeouts). To do: nothing if rare: the SDK reconnects.
- `unreachable`: no connection could be made: refused, no route, DNS, TLS, connect timed out; or the HTTP
  proxy (`network.proxy`) is unreachable or refuses the tunnel (the reason then starts with `HTTP proxy`).
  To do: network, firewall, namespace host and port; the proxy's allow list (docs/networks.md).
- `unauthorized`: the key, SAS or identity is refused (`AuthenticationError`, `amqp:unauthorized-access`).
  To do: key / role assignment.
- `entity_not_found`: `amqp:not-found`: the hub or the consumer group does not exist. To do: `eventhub.name`,
  `eventhub.consumer_group`.
- `throttled`: `amqp:resource-limit-exceeded`, `server-busy`. To do: throughput units, receivers per
  partition.
- `storage_unauthorized`: storage 401/403, or the request could not be signed. To do: the storage key or role
  assignment.
- `storage_4xx`: another storage 4xx (404 container gone, 409, 412). To do: the container, the account.
- `storage_5xx`: storage 5xx (503 is also its throttling). To do: Azure status; transient.
- `storage_unreachable`: no answer from storage: refused, DNS, reset. To do: network, the account URL.
- `storage_timeout`: a checkpoint write that did not finish within its timeout. To do: storage latency.
- `other`: anything else. To do: the log line's `error_type` and `error_reason`.

Pure: no I/O, no logging; `log_fields` builds what a log line says about an error, scrubbed of
secrets and phone numbers.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
import traceback
from collections.abc import Iterator
from typing import Any

PARTITION_STOLEN = "partition_stolen"
CONNECTION_LOST = "connection_lost"
UNREACHABLE = "unreachable"
UNAUTHORIZED = "unauthorized"
ENTITY_NOT_FOUND = "entity_not_found"
THROTTLED = "throttled"
STORAGE_UNAUTHORIZED = "storage_unauthorized"
STORAGE_4XX = "storage_4xx"
STORAGE_5XX = "storage_5xx"
STORAGE_UNREACHABLE = "storage_unreachable"
STORAGE_TIMEOUT = "storage_timeout"
OTHER = "other"

#: Every value of the `kind` label, in the order of the table above.
KINDS = (PARTITION_STOLEN, CONNECTION_LOST, UNREACHABLE, UNAUTHORIZED, ENTITY_NOT_FOUND, THROTTLED,
         STORAGE_UNAUTHORIZED, STORAGE_4XX, STORAGE_5XX, STORAGE_UNREACHABLE, STORAGE_TIMEOUT, OTHER)
#: Kinds of the Event Hubs side (the others are the checkpoint store's, or unknown).
EVENTHUB_KINDS = frozenset({PARTITION_STOLEN, CONNECTION_LOST, UNREACHABLE, UNAUTHORIZED, ENTITY_NOT_FOUND, THROTTLED})
#: Kinds of the checkpoint store (its own readiness check covers them).
STORAGE_KINDS = frozenset({STORAGE_UNAUTHORIZED, STORAGE_4XX, STORAGE_5XX, STORAGE_UNREACHABLE, STORAGE_TIMEOUT})
#: Kinds that are part of normal operation: not a reason to be unready.
BENIGN_KINDS = frozenset({PARTITION_STOLEN})

_MAX_CHAIN = 10
_REASON_CHARACTERS = 200


def chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it (`__cause__`, else `__context__`), without loops."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _condition(error: BaseException) -> str:
    """The AMQP error condition an exception carries, without its namespace (`not-found`, `link:stolen`)."""
    value: Any = getattr(error, "condition", None)  # pyamqp's AMQPException: an ErrorCondition or bytes
    if value is not None:
        value = getattr(value, "value", value)
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return text.removeprefix("amqp:").removeprefix("com.microsoft:").lower()
    value = getattr(error, "error", None)  # azure-eventhub's EventHubError: the condition after its first ':'
    return value.lower() if isinstance(value, str) else ""


def _is(error: BaseException, module: str, *names: str) -> bool:
    """Whether `error` is an instance of a class called one of `names` from `module` (any subclass),
    so that classifying needs neither SDK to be imported."""
    return any(cls.__name__ in names and cls.__module__.startswith(module) for cls in type(error).__mro__)


def classify(error: BaseException) -> str:
    """The kind (one of `KINDS`) of an Event Hubs, storage or network error."""
    errors = list(chain(error))
    conditions = {_condition(e) for e in errors} - {""}
    # Storage (azure-core's HTTP pipeline): the status says it.
    for e in errors:
        if _is(e, "azure.storage", "AzureSigningError"):
            return STORAGE_UNAUTHORIZED
        status = getattr(e, "status_code", None)
        if _is(e, "azure.core", "HttpResponseError") and isinstance(status, int):
            if status in (401, 403):
                return STORAGE_UNAUTHORIZED
            return STORAGE_4XX if 400 <= status < 500 else STORAGE_5XX if status >= 500 else OTHER
        if _is(e, "azure.core", "ServiceRequestError", "ServiceResponseError"):
            return STORAGE_UNREACHABLE
    if _proxy_failure(errors):  # before the SDK's wrapping (an AuthenticationError, with a custom endpoint)
        return UNREACHABLE
    if any(getattr(e, "status_code", None) == 404 and _is(e, "azure.eventhub", "TokenAuthFailure") for e in errors):
        return ENTITY_NOT_FOUND  # the service answers a token for a hub or consumer group that does not exist so
    if (any(_is(e, "azure.eventhub", "AuthenticationError", "AuthenticationException") for e in errors)
            or any(_is(e, "azure.core", "ClientAuthenticationError") for e in errors)  # a credential without a token
            or "unauthorized-access" in conditions):
        return UNAUTHORIZED
    if "link:stolen" in conditions or any(_is(e, "azure.eventhub", "OwnershipLostError") for e in errors):
        return PARTITION_STOLEN
    if "not-found" in conditions or "messaging-entity-not-found" in conditions:
        return ENTITY_NOT_FOUND
    if conditions & {"resource-limit-exceeded", "server-busy"}:
        return THROTTLED
    if any(_never_connected(e) for e in errors):
        return UNREACHABLE
    if (_is(error, "azure.eventhub", "ConnectionLostError", "ConnectError", "OperationTimeoutError")
            or conditions & {"link:detach-forced", "connection:forced", "socket-error"}
            or any(isinstance(e, (ConnectionError, TimeoutError)) for e in errors)):
        return CONNECTION_LOST
    return OTHER


def _proxy_failure(errors: list[BaseException]) -> str | None:
    """What went wrong at the HTTP proxy (aiohttp's errors, in the Event Hubs WebSocket transport's
    chain), or None: the proxy answered CONNECT with an error status, or could not be reached."""
    for e in errors:
        if _is(e, "aiohttp", "ClientHttpProxyError"):
            return f"HTTP proxy refused the tunnel (CONNECT answered {getattr(e, 'status', '?')})"
        if _is(e, "aiohttp", "ClientProxyConnectionError"):
            return "HTTP proxy unreachable"
    return None


def _never_connected(error: BaseException) -> bool:
    """A connection that could not be made at all: refused, no route, DNS, TLS — or pyamqp's
    "Failed to initiate the connection" (which it also says of a connect that timed out). A connection
    that was open and then dropped (reset, closed, broken pipe) is `connection_lost` instead."""
    if isinstance(error, (ConnectionRefusedError, socket.gaierror, ssl.SSLError)):
        return True
    if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return True
    return "Failed to initiate the connection" in str(error)


# --- what a log line says about an error ---------------------------------------------------------

#: Names whose value is a credential: in a connection string (`AccountKey=`), a URL's query (`sig=`,
#: URL-encoded `sig%3D`), a header (`Authorization: `), a dict's repr (`'AccountKey': '...'`) or JSON.
_SECRET_NAMES = ("SharedAccessKey|SharedAccessSignature|AccountKey|sig|password|passwd|pwd|client_secret|secret|"
                 "access_token|refresh_token|id_token|token|api_key|apikey|authorization|x-api-key")
#: The name (after anything but a letter, `_` or `-`: a digit may end `%26`, a URL-encoded `&`), then its
#: separator (`=`, `:`, `%3D`, with optional quotes around the name's end and the value's start), then the
#: value up to the next separator. Each part is a single greedy run after a fixed prefix, so a failed
#: attempt never rescans: linear time on any input.
_SECRET_PAIR = re.compile(
    rf"(?i)(?<![a-z_-])({_SECRET_NAMES})(['\"]?[ \t]*(?:[=:]|%3D)[ \t]*['\"]?)"
    r"(?:(?:Bearer|Basic|SharedAccessSignature)[ \t]+)?[^\s;&,'\"<>(){}\[\]]+")
#: `SharedAccessSignature sr=...&sig=...&se=...` (an Event Hubs SAS token) and `Bearer <token>`.
_TOKEN = re.compile(r"(?i)\b(SharedAccessSignature|Bearer)[ \t]+[^\s;,'\"<>(){}\[\]]+")
#: A JSON Web Token (`eyJ...`: base64url of '{"'), with or without its other two parts.
_JWT = re.compile(r"\beyJ[\w-]{10,}(?:\.[\w-]+){0,2}")
#: A run of 40 or more base64 characters, a key when it mixes digits and both cases and has base64's
#: `+`, `/` or `=` padding (a storage account key is 88 characters ending in `==`, a SAS key 44 ending
#: in `=`); hub names, paths and tracking ids do not.
_KEY_LIKE = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
#: A URL's user information (`scheme://user:password@host`, e.g. a proxy's).
_URL_USERINFO = re.compile(r"(?<=://)[^/\s@'\"]+@")
_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d|\b\d{10,15}\b")  # E.164 with its +, or a long run of digits
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")


def _key_like(match: re.Match[str]) -> str:
    run = match.group(0)
    mixed = any(c.isdigit() for c in run) and any(c.isupper() for c in run) and any(c.islower() for c in run)
    return "***" if mixed and ("+" in run or "/" in run or run.endswith("=")) else run


def scrub_secrets(text: str) -> str:
    """`text` without credentials: the value after a credential's name (`AccountKey=`, `sig=`, `sig%3D`,
    `'AccountKey': '...'`, `"password": "..."`, `Authorization: Bearer ...`), a URL's user
    information (`http://***@proxy`), SAS and bearer tokens,
    JSON Web Tokens and key-like base64 runs become `***`. Applied to every log line the service writes
    and to everything `check-config` prints."""
    text = _TOKEN.sub(lambda m: f"{m.group(1)} ***", text)
    text = _SECRET_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    text = _URL_USERINFO.sub("***@", text)
    return _KEY_LIKE.sub(_key_like, _JWT.sub("***", text))


def scrub(text: str) -> str:
    """`text` without credentials (`scrub_secrets`), phone numbers (a `+` and 8 or more digits, or 10 to
    15 digits in a row) or IPv4 addresses; tracking ids, timestamps, ports and status codes stay (Azure
    support asks for the tracking id)."""
    return _IP.sub("***", _PHONE.sub("***", scrub_secrets(text)))


def reason(error: BaseException) -> str:
    """The error's message on one line (its distinct lines joined by '; ': the SDK puts the status and the
    service's description on lines of their own), scrubbed, cut to 200 characters; the type if it has none."""
    lines = list(dict.fromkeys(line.strip() for line in str(error).splitlines() if line.strip()))
    proxy = _proxy_failure(list(chain(error)))
    text = scrub("; ".join([proxy, *lines] if proxy else lines))
    return (text[: _REASON_CHARACTERS - 1] + "…" if len(text) > _REASON_CHARACTERS else text) or type(error).__name__


def log_fields(error: BaseException, kind: str | None = None, debug: bool = False) -> dict[str, Any]:
    """`extra=` of a log line about `error`: its kind, type and one-line reason; with `debug`, the whole
    chain (each exception's type and scrubbed message, then the scrubbed traceback)."""
    fields: dict[str, Any] = {
        "kind": kind or classify(error),
        "error_type": type(error).__name__,
        "error_reason": reason(error),
    }
    if debug:
        fields["error_chain"] = [f"{type(e).__module__}.{type(e).__qualname__}: {scrub(str(e))}" for e in chain(error)]
        fields["traceback"] = scrub("".join(traceback.format_exception(error)))
    return fields
