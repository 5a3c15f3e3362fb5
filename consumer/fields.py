"""The ACS/Azure fields of the records this service reads: one table, which drives both decoders.

Each field the metrics use is one `Field`: its name in the typed records, its spelling in the Event
Hubs shape (Azure resource-log common schema) and whether it sits inside `properties` there, its other
spellings (the Log Analytics shape of the ACS docs, seen variants), its kind (type and bounds, see
`NUMBERS`), whether it holds personal data, and whether it marks a lone JSON object as a record.
Each field Azure writes that no metric uses is one `Ignored`, with `pii` for those that hold personal
data (caller IPs, URIs): they are never kept by the general decoder; the canonical
decoder (`consumer.records.decode_canonical`) has to type them to accept a body that holds them, and
drops them with the body.

From this table `consumer.records` builds the general decoder's spelling lookups (exact spellings
first, then case-insensitive), its pydantic models, the reasons' field names (as Azure spells them)
and the canonical decoder's msgspec Structs; `consumer.decode` its record markers. Adding a field is
one line here, the code that reads it, and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Bounds of a plausible value. Beyond them a value is absurd (a bug, a hostile producer) and its record
#: is `invalid`, so that every counter and histogram sum stays finite and meaningful: two Quantity
#: values of 1e308 would make `acs_usage_quantity_total` +Inf forever, one DeliveryAttempts of 10**400
#: cannot even be added to a float. Non-finite numbers (NaN, Infinity, "1e400") are refused as well.
MAX_DURATION_MS = 3 * 24 * 3600 * 1000  # durationMs: an API call of more than 3 days is not one
MAX_QUANTITY = 1_000_000_000  # Quantity: units billed in one usage record
MAX_COUNT = 1_000_000  # DeliveryAttempts, OutgoingMessageLength, IncomingMessageLength

#: text: a string (numbers become their text in the general decoder); time: a date-time string;
#: signature: a string or an integer (as Azure writes `resultSignature`); count (an integer),
#: duration (milliseconds) and quantity: numbers of the type and within the bounds `NUMBERS` gives.
Kind = Literal["text", "time", "signature", "count", "duration", "quantity"]


@dataclass(frozen=True, slots=True)
class Bounds:
    """The type of a number kind's values and the range [low, high] of a plausible one."""

    type: type[int] | type[float]
    low: int
    high: int


#: The kinds whose values are numbers: both decoders type and bound them from here.
NUMBERS: dict[Kind, Bounds] = {
    "count": Bounds(int, 0, MAX_COUNT),
    "duration": Bounds(float, 0, MAX_DURATION_MS),
    "quantity": Bounds(float, 0, MAX_QUANTITY),
}

#: Which records hold a field: every record, SMSOperational ones, Usage ones.
Category = Literal["common", "sms", "usage"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # in the typed records (`SmsOperational`, `Usage`)
    event_hubs: str  # spelling in the Event Hubs shape
    nested: bool  # inside `properties` in the Event Hubs shape (top level in the Log Analytics shape)
    kind: Kind
    category: Category
    other: tuple[str, ...] = ()  # other exact spellings (Log Analytics, variants seen); any casing matches too
    required: bool = False
    #: personal data kept for a rule: never in a typed record's repr or dump, never logged or in a reason
    pii: bool = False
    #: any of its spellings (any casing) makes a lone JSON object a record (`consumer.decode`)
    marks_record: bool = False


@dataclass(frozen=True, slots=True)
class Ignored:
    event_hubs: str | None  # None: not in the Event Hubs shape
    nested: bool
    other: tuple[str, ...] = ()
    pii: bool = False


FIELDS: tuple[Field, ...] = (
    Field("time", "time", False, "time", "common", ("TimeGenerated", "timeStamp", "Time", "Timestamp"),
          marks_record=True),
    Field("operation_name", "operationName", False, "text", "common", ("OperationName",), required=True,
          marks_record=True),
    Field("category", "category", False, "text", "common", ("Category",), required=True, marks_record=True),
    Field("result_type", "resultType", False, "text", "common", ("ResultType",), marks_record=True),
    Field("result_signature", "resultSignature", False, "signature", "common", ("ResultSignature",)),
    # the ARM id of the ACS resource (its name is the `resource` label)
    Field("resource_id", "resourceId", False, "text", "common", ("_ResourceId",)),
    Field("duration_ms", "durationMs", False, "duration", "sms", ("DurationMs",)),
    Field("number_type", "NumberType", True, "text", "sms"),
    Field("country", "Country", True, "text", "sms"),
    Field("message_id", "MessageId", True, "text", "sms", ("MessageID",)),
    # The number (or alphanumeric sender ID) the message is sent from, as ACS documents `PhoneNumber`:
    # personal data as far as this service knows. Kept in memory only, like MessageId, never logged and
    # never in a reason; it becomes the `sender` label only when the operator lists it
    # (`pipeline.labels.senders`, `labels.Senders`), and is read only then.
    Field("sender", "PhoneNumber", True, "text", "sms", pii=True),
    Field("delivery_attempts", "DeliveryAttempts", True, "count", "sms"),
    Field("outgoing_message_length", "OutgoingMessageLength", True, "count", "sms"),
    Field("incoming_message_length", "IncomingMessageLength", True, "count", "sms"),
    Field("record_id", "RecordId", True, "text", "usage"),
    Field("usage_type", "UsageType", True, "text", "usage"),
    Field("unit_type", "UnitType", True, "text", "usage"),
    Field("quantity", "Quantity", True, "quantity", "usage", required=True),
)

IGNORED: tuple[Ignored, ...] = (
    Ignored("operationVersion", False, ("OperationVersion",)),
    Ignored("resultDescription", False, ("ResultDescription",)),
    Ignored("callerIpAddress", False, ("CallerIpAddress",), pii=True),
    Ignored("correlationId", False, ("CorrelationId", "CorrelationID")),
    Ignored("level", False, ("Level",)),
    Ignored("location", False, ("Location",)),
    Ignored("SdkType", True),
    Ignored("PlatformType", True),
    Ignored("Method", True),
    Ignored("URI", True, pii=True),
    Ignored("ChatThreadId", True),  # Chat records share the bodies (their category is skipped)
    # columns of the Log Analytics table (no Event Hubs spelling)
    Ignored(None, False, ("TenantId", "SourceSystem", "Type", "_SubscriptionId", "_BilledSize", "_IsBillable")),
)

#: The bag of category-specific fields in the Event Hubs shape (an object, a JSON string or Azure's
#: single-quoted pseudo-JSON); a Usage record's `properties` holds a nested `Properties` string,
#: which no metric reads.
PROPERTIES = "properties"
NESTED_PROPERTIES = "Properties"


def spellings(field: Field | Ignored) -> tuple[str, ...]:
    """Every exact spelling of a field (the Event Hubs one first)."""
    return (field.event_hubs, *field.other) if field.event_hubs is not None else field.other
