"""Raw record (a JSON object) → one typed record per category, or why it is skipped or invalid.

Two shapes arrive and must give the same result:
- the Event Hubs / Storage shape (Azure resource-log common schema): camelCase top-level fields
  (`time`, `operationName`, `category`, `resultType`, ...) with the category's own fields inside
  `properties` (an object, a JSON string, or Azure's single-quoted pseudo-JSON string);
- the Log Analytics shape of the ACS docs: flat PascalCase fields (`TimeGenerated`, `OperationName`,
  `PhoneNumber`, `MessageId`, `Country`, ...).
Field names match case-insensitively; a field at top level wins over the same field in `properties`.

Only what the metrics need is kept. Phone numbers, caller IPs and URIs are dropped here, at the
edge, so no later layer can leak them; `message_id` is kept (in memory only) to correlate delivery
reports with sends, and `record_id` to drop duplicate usage records.

Time: `time`, `TimeGenerated` or `timeStamp`; ISO 8601 with 0-9 fractional digits, `Z`, an offset or
none (taken as UTC), or the US-style `MM/DD/YYYY hh:mm:ss` seen in the field. A record whose time is
missing or unparseable is still valid — its counters count — but it has `time=None`, so it adds
nothing to latency or age histograms (`time_problem` says why, for the logs).

This module is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from consumer.decode import repair_json
from consumer.labels import SMS_OPERATIONAL, USAGE


NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Record(BaseModel):
    model_config = ConfigDict(
        str_strip_whitespace=True,
        coerce_numbers_to_str=True,  # "ResultSignature": 202 and "202" are the same
        allow_inf_nan=False,  # NaN/Infinity are not quantities or durations
        extra="ignore",
    )

    time: datetime | None = None
    time_problem: str | None = None
    operation_name: str
    category: str
    result_type: str | None = None
    result_signature: str | None = None


class SmsOperational(_Record):
    """One SMSOperational log line: a send, a delivery report, an incoming message, an opt-in/out."""

    duration_ms: NonNegativeFloat | None = None
    number_type: str | None = None
    country: str | None = None
    message_id: str | None = None
    delivery_attempts: NonNegativeInt | None = None
    outgoing_message_length: NonNegativeInt | None = None
    incoming_message_length: NonNegativeInt | None = None


class Usage(_Record):
    """One Usage (billing) log line."""

    record_id: str | None = None
    usage_type: str | None = None
    unit_type: str | None = None
    quantity: NonNegativeFloat


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record of a category this service does not parse (counted, not an error)."""

    category: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record that failed validation; `reason` names the field and the problem, never its value."""

    category: str | None
    reason: str


Record = SmsOperational | Usage
Outcome = SmsOperational | Usage | Skipped | Invalid

# Lower-cased source field → model field. Every spelling seen in either shape.
_COMMON = {
    "time": "time",
    "timegenerated": "time",
    "timestamp": "time",
    "operationname": "operation_name",
    "category": "category",
    "resulttype": "result_type",
    "resultsignature": "result_signature",
}
_SMS_ONLY = {
    "durationms": "duration_ms",
    "numbertype": "number_type",
    "country": "country",
    "messageid": "message_id",
    "deliveryattempts": "delivery_attempts",
    "outgoingmessagelength": "outgoing_message_length",
    "incomingmessagelength": "incoming_message_length",
}
_USAGE_ONLY = {
    "recordid": "record_id",
    "usagetype": "usage_type",
    "unittype": "unit_type",
    "quantity": "quantity",
}
_FIELDS: dict[str, str] = {**_COMMON, **_SMS_ONLY, **_USAGE_ONLY}
# Exact spellings of both shapes hit without lower-casing the key (the hot path).
_SPELLINGS: dict[str, str] = dict(_FIELDS)
for _camel in (
    "operationName", "resultType", "resultSignature", "durationMs", "timeStamp", "TimeGenerated",
    "OperationName", "Category", "ResultType", "ResultSignature", "DurationMs", "NumberType", "Country",
    "MessageId", "MessageID", "DeliveryAttempts", "OutgoingMessageLength", "IncomingMessageLength",
    "RecordId", "UsageType", "UnitType", "Quantity", "Time", "Timestamp",
):
    _SPELLINGS[_camel] = _FIELDS[_camel.lower()]
_CATEGORIES = {SMS_OPERATIONAL.lower(): SMS_OPERATIONAL, USAGE.lower(): USAGE}
_SKIP = "\0skip"  # sentinels in _SPELLINGS: a known key that is not a field / the properties bag
_PROPERTIES = "\0properties"
for _key in ("resourceId", "operationVersion", "resultDescription", "callerIpAddress", "correlationId", "level",
             "location", "PhoneNumber", "URI", "SdkType", "PlatformType", "Method", "CorrelationId",
             "CorrelationID", "CallerIpAddress", "OperationVersion", "ResultDescription", "Level"):
    _SPELLINGS[_key] = _SKIP
_SPELLINGS["properties"] = _SPELLINGS["Properties"] = _PROPERTIES
_NULLS = frozenset({"", " ", "null", "NULL", "Null", "None", "none"})


def normalise(raw: Any) -> Outcome:
    """Turn one raw record into a typed record, or say why not. Never raises."""
    if type(raw) is not dict:
        if isinstance(raw, dict):  # a dict subclass: treat it as a record all the same
            raw = dict(raw)
        else:
            return Invalid(None, f"record is a JSON {_json_type(raw)}, not an object")
    flat: dict[str, Any] = {}
    properties: Any = None
    spelling = _SPELLINGS.get
    for key, value in raw.items():
        name = spelling(key)
        if name is None:
            lowered = key.lower()
            name = _FIELDS.get(lowered)
            if name is None:
                if lowered == "properties":
                    properties = value
                continue
        elif name is _SKIP:
            continue
        elif name is _PROPERTIES:
            properties = value
            continue
        if value is None or (type(value) is str and value in _NULLS):
            continue
        flat[name] = value
    if properties is not None:
        problem = _merge_properties(flat, properties)
        if problem:
            return Invalid(_category_name(_category_of(flat)), problem)

    category = _category_of(flat)
    if category is None:
        return Invalid(None, "category is missing and cannot be inferred")
    if type(category) is not str:
        return Invalid(None, f"category is a JSON {_json_type(category)}, not a string")
    canonical = _CATEGORIES.get(category) or _CATEGORIES.get(category.strip().lower())
    if canonical is None:
        return Skipped(category.strip())
    flat["category"] = canonical

    if "time" in flat:
        flat["time"], flat["time_problem"] = _parse_time(flat["time"])
    else:
        flat["time_problem"] = "time is missing"

    model = SmsOperational if canonical == SMS_OPERATIONAL else Usage
    try:
        return model.model_validate(flat)
    except ValidationError as exc:
        return Invalid(canonical, _describe(exc))


def _category_name(category: Any) -> str | None:
    return category.strip() if isinstance(category, str) else None


def _json_type(value: Any) -> str:
    return {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
            list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _merge_properties(flat: dict[str, Any], properties: Any) -> str | None:
    if isinstance(properties, str):
        text = properties.strip()
        if not text or text in _NULLS:
            return None
        try:
            properties = orjson.loads(text)
        except orjson.JSONDecodeError:
            try:
                properties = orjson.loads(repair_json(text))
            except orjson.JSONDecodeError:
                return "properties is a string that is not a JSON object"
    if type(properties) is not dict:
        return f"properties is a JSON {_json_type(properties)}, not an object"
    spelling = _SPELLINGS.get
    for key, value in properties.items():
        name = spelling(key)
        if name is None:
            name = _FIELDS.get(key.lower())
            if name is None:
                continue
        elif name is _SKIP or name is _PROPERTIES:
            continue
        if name not in flat and not (value is None or (type(value) is str and value in _NULLS)):
            flat[name] = value
    return None


def _category_of(flat: dict[str, Any]) -> Any:
    category = flat.get("category")
    if category is not None and not (type(category) is str and not category.strip()):
        return category
    # The Log Analytics shape may come without Category: infer it from what the record holds.
    operation = flat.get("operation_name")
    if isinstance(operation, str) and operation.strip().lower().startswith("sms"):
        return SMS_OPERATIONAL
    if "usage_type" in flat or "quantity" in flat:
        return USAGE
    return None


_US_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S.%f")


def _parse_time(value: Any) -> tuple[datetime | None, str | None]:
    """Parse a record time to an aware UTC datetime, or give the problem."""
    if type(value) is not str:
        return None, f"time is a JSON {_json_type(value)}, not a string"
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _US_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            return None, "time is not an ISO 8601 or MM/DD/YYYY date-time"
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC), None
    try:
        return parsed.astimezone(UTC), None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC form
        return None, "time is out of range"


_FIELD_SOURCE = {
    "operation_name": "operationName",
    "result_signature": "resultSignature",
    "result_type": "resultType",
    "duration_ms": "durationMs",
    "number_type": "NumberType",
    "country": "Country",
    "message_id": "MessageId",
    "delivery_attempts": "DeliveryAttempts",
    "outgoing_message_length": "OutgoingMessageLength",
    "incoming_message_length": "IncomingMessageLength",
    "record_id": "RecordId",
    "usage_type": "UsageType",
    "unit_type": "UnitType",
    "quantity": "Quantity",
}


def _describe(exc: ValidationError) -> str:
    """Name the field (as Azure spells it) and the problem; never quote the value, which may be PII."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"][0] if error["loc"] else "record"
        field = _FIELD_SOURCE.get(str(loc), str(loc))
        message = "is missing" if error["type"] == "missing" else error["msg"].lower()
        parts.append(f"{field} {message}")
    return "; ".join(parts)
