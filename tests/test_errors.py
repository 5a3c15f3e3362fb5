"""consumer.errors: each exception the SDKs raise maps to the kind that names its cause; log fields
carry the type and a one-line reason, the chain only at DEBUG, never a secret or a phone number."""

from __future__ import annotations

import asyncio

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.eventhub._pyamqp import error as amqp
from azure.eventhub._transport._pyamqp_transport import PyamqpTransport
from azure.eventhub.exceptions import OperationTimeoutError, OwnershipLostError
from azure.storage.blob._shared.authentication import AzureSigningError

from consumer import errors
from consumer.errors import KINDS, classify, log_fields, reason, scrub


def sdk(exception: Exception) -> Exception:
    """The azure-eventhub exception the SDK raises for a pyamqp one (its own conversion), chained as it is."""
    try:
        try:
            raise exception
        except Exception as inner:
            raise PyamqpTransport._create_eventhub_exception(inner, is_consumer=True) from inner
    except Exception as outer:
        return outer


def link(condition: amqp.ErrorCondition | bytes, description: str = "") -> Exception:
    return sdk(amqp.AMQPLinkError(condition=condition, description=description))


class Response:
    """The least of an HTTP response that azure-core's HttpResponseError reads."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers: dict[str, str] = {}
        self.request = None

    def text(self) -> str:
        return ""


def storage(status: int, cls: type[HttpResponseError] = HttpResponseError) -> Exception:
    return cls(message=f"status {status}", response=Response(status))


@pytest.mark.parametrize("error, kind", [
    # Event Hubs: the exception classes and the AMQP conditions the service (and the local endpoint) send
    (link(amqp.ErrorCondition.LinkStolen, "New receiver with higher epoch of '0' is created"), "partition_stolen"),
    (OwnershipLostError(), "partition_stolen"),
    (link(amqp.ErrorCondition.NotFound, "The consumer group 'x' could not be found."), "entity_not_found"),
    (sdk(amqp.AMQPConnectionError(amqp.ErrorCondition.NotFound, description="Management connection failed. Status code: 404")),
     "entity_not_found"),
    (sdk(amqp.TokenAuthFailure(401, b"InvalidSignature: The token has an invalid signature.")), "unauthorized"),
    (sdk(amqp.TokenAuthFailure(404, b"The messaging entity 'sb://ns.servicebus.windows.net/x' could not be found.")),
     "entity_not_found"),  # the service's answer to a token for a hub that does not exist
    (link(amqp.ErrorCondition.UnauthorizedAccess, "Unauthorized access. 'Listen' claim(s) are required"), "unauthorized"),
    (ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"), "unauthorized"),
    (link(amqp.ErrorCondition.ResourceLimitExceeded, "Exceeded the maximum number of allowed receivers"), "throttled"),
    (link(b"com.microsoft:server-busy", "The request was terminated because the namespace is being throttled."), "throttled"),
    (link(amqp.ErrorCondition.LinkDetachForced, "idle"), "connection_lost"),
    (sdk(TimeoutError("Authentication attempt timed-out.")), "connection_lost"),
    (OperationTimeoutError("timed out"), "connection_lost"),
    (sdk(amqp.AMQPConnectionError(amqp.ErrorCondition.SocketError, description="Failed to initiate the connection")),
     "unreachable"),
    (sdk(ConnectionRefusedError(111, "Connect call failed ('10.1.2.3', 5671)")), "unreachable"),
    (sdk(OSError(113, "No route to host")), "unreachable"),
    (sdk(amqp.AMQPConnectionError(amqp.ErrorCondition.SocketError, description="Connection reset by peer")),
     "connection_lost"),  # open, then dropped
    (sdk(ConnectionResetError(104, "Connection reset by peer")), "connection_lost"),
    # Storage: by HTTP status class
    (storage(403, ClientAuthenticationError), "storage_unauthorized"),
    (storage(401), "storage_unauthorized"),
    (AzureSigningError("Invalid base64-encoded string"), "storage_unauthorized"),
    (storage(404, ResourceNotFoundError), "storage_4xx"),
    (storage(412), "storage_4xx"),
    (storage(503), "storage_5xx"),
    (storage(500), "storage_5xx"),
    (ServiceRequestError("Cannot connect to host 127.0.0.1:10000"), "storage_unreachable"),
    # Anything else
    (ValueError("a bug"), "other"),
    (KeyError("x"), "other"),
])
def test_each_cause_has_its_kind(error, kind):
    assert kind in KINDS
    assert classify(error) == kind


def test_a_stolen_partition_and_a_lost_connection_are_told_apart():
    # The SDK raises the same class (ConnectionLostError) for both: the condition tells them apart.
    stolen, lost = link(amqp.ErrorCondition.LinkStolen), link(amqp.ErrorCondition.LinkDetachForced)
    assert type(stolen) is type(lost) and type(stolen).__name__ == "ConnectionLostError"
    assert (classify(stolen), classify(lost)) == ("partition_stolen", "connection_lost")


def test_the_vocabulary_is_small_and_fixed():
    assert len(KINDS) == len(set(KINDS)) == 12
    assert errors.EVENTHUB_KINDS < set(KINDS) and errors.BENIGN_KINDS == {"partition_stolen"}
    assert errors.STORAGE_KINDS == {kind for kind in KINDS if kind.startswith("storage_")}
    assert errors.EVENTHUB_KINDS | errors.STORAGE_KINDS == set(KINDS) - {"other"}


def test_a_chain_that_loops_is_walked_once():
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert [str(e) for e in errors.chain(a)] == ["a", "b"]
    assert classify(a) == "other"


KEY = "c2VjcmV0LWtleS1vZi10aGUtaHViLTAxMjM0NTY3ODk="
PHONE = "+14255550123"


def secret_error() -> Exception:
    """An error whose message and whose cause quote a connection string, a SAS token and a phone number."""
    try:
        try:
            raise ValueError(f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={KEY}")
        except ValueError as inner:
            raise RuntimeError(f"token SharedAccessSignature sr=x&sig={KEY}&se=1 refused for {PHONE}\nsecond line "
                               f"AccountKey={KEY}") from inner
    except RuntimeError as outer:
        return outer


def test_log_fields_have_the_type_and_one_line_reason_without_secrets():
    fields = log_fields(secret_error())
    assert set(fields) == {"kind", "error_type", "error_reason"}
    assert fields["kind"] == "other" and fields["error_type"] == "RuntimeError"
    assert fields["error_reason"] == "token SharedAccessSignature *** refused for ***; second line AccountKey=***"
    assert KEY not in str(fields) and PHONE not in str(fields) and "14255550123" not in str(fields)


def test_log_fields_at_debug_carry_the_chain_still_without_secrets():
    fields = log_fields(secret_error(), debug=True)
    assert [line.split(":")[0] for line in fields["error_chain"]] == ["builtins.RuntimeError", "builtins.ValueError"]
    assert "SharedAccessKey=***" in fields["error_chain"][1]
    assert "The above exception was the direct cause" in fields["traceback"]
    assert "second line AccountKey=***" in fields["traceback"]
    text = str(fields)
    assert KEY not in text and "14255550123" not in text


def test_reason_is_one_short_line():
    assert reason(ValueError("x" * 500 + "\nmore")) == "x" * 199 + "…"
    auth = sdk(amqp.TokenAuthFailure(401, b"InvalidSignature: The token has an invalid signature."))
    assert reason(auth) == ("CBS Token authentication failed.; Status code: 401; Description: InvalidSignature: "
                            "The token has an invalid signature.; Error: client-error")
    assert reason(ValueError()) == "ValueError"
    assert reason(asyncio.TimeoutError()) == "TimeoutError"


@pytest.mark.parametrize("text, expected", [
    ("Connect call failed ('10.1.2.3', 5671)", "Connect call failed ('***', 5671)"),
    ("Status code: 401", "Status code: 401"),
    ("sig=abc%3D&se=17", "sig=***&se=17"),
    ("password: hunter2", "password: ***"),
    ("call +1 (425) 555-0123 now", "call *** now"),
    ("The token has an invalid signature.", "The token has an invalid signature."),
    ("sent to 14255550123.", "sent to ***."),
    ("TrackingId:51ebabc3-1f2e-4644-890f-dbdb1e78b772_G1, SystemTracker:ns:hub, Timestamp:2019-05-03T11:11:50",
     "TrackingId:51ebabc3-1f2e-4644-890f-dbdb1e78b772_G1, SystemTracker:ns:hub, Timestamp:2019-05-03T11:11:50"),
])
def test_scrub(text, expected):
    assert scrub(text) == expected
