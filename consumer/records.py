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

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import SchemaValidator

from consumer.decode import repair_json
from consumer.labels import SMS_OPERATIONAL, USAGE


#: Bounds of a plausible value. Beyond them a value is absurd (a bug, a hostile producer) and its record
#: is `invalid`, so that every counter and histogram sum stays finite and meaningful: two Quantity
#: values of 1e308 would make `acs_usage_quantity_total` +Inf forever, one DeliveryAttempts of 10**400
#: cannot even be added to a float. Non-finite numbers (NaN, Infinity, "1e400") are refused as well.
MAX_DURATION_MS = 3 * 24 * 3600 * 1000  # durationMs: an API call of more than 3 days is not one
MAX_QUANTITY = 1_000_000_000  # Quantity: units billed in one usage record
MAX_COUNT = 1_000_000  # DeliveryAttempts, OutgoingMessageLength, IncomingMessageLength

Duration = Annotated[float, Field(ge=0, le=MAX_DURATION_MS)]
Quantity = Annotated[float, Field(ge=0, le=MAX_QUANTITY)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


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

    duration_ms: Duration | None = None
    number_type: str | None = None
    country: str | None = None
    message_id: str | None = None
    delivery_attempts: Count | None = None
    outgoing_message_length: Count | None = None
    incoming_message_length: Count | None = None


class Usage(_Record):
    """One Usage (billing) log line."""

    record_id: str | None = None
    usage_type: str | None = None
    unit_type: str | None = None
    quantity: Quantity


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
    if type(raw) is dict:
        fast = _fast_normalise(raw)
        if fast is not None:
            return fast
    return _normalise(raw)


def _normalise(raw: Any) -> Outcome:
    """The general path: any key casing, string `properties`, nulls, inference; the reference for
    what `_fast_normalise` must reproduce."""
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
#: Longer than any time Azure writes (`2026-11-02T09:15:01.1234567+05:30` is 33): a longer one is not
#: parsed at all, so that no date parser ever reads a value of untrusted length.
MAX_TIME_LENGTH = 64


def _parse_time(value: Any) -> tuple[datetime | None, str | None]:
    """Parse a record time to an aware UTC datetime, or give the problem."""
    if type(value) is not str:
        return None, f"time is a JSON {_json_type(value)}, not a string"
    text = value.strip()
    if len(text) > MAX_TIME_LENGTH:
        return None, f"time is longer than {MAX_TIME_LENGTH} characters"
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
    tzinfo = parsed.tzinfo
    if tzinfo is UTC:  # `Z` and `+00:00` (the Event Hubs shape): already what astimezone would give
        return parsed, None
    if tzinfo is None:
        return parsed.replace(tzinfo=UTC), None
    try:
        return parsed.astimezone(UTC), None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC form
        return None, "time is out of range"


# --- fast path ----------------------------------------------------------------------------------
#
# Most records come in one exact spelling of one of the two shapes. For those, pydantic-core maps the
# fields itself (aliases and `properties.X` paths, in Rust) straight from the raw dict into the very
# same model classes, instead of the Python flattening above. A record qualifies only when the result
# cannot differ from `_normalise`'s:
# - every key (and every `properties` key) is one of the shape's known exact spellings, and each model
#   field has exactly one spelling in the shape, so there is no precedence to resolve (top level vs
#   `properties`, two spellings of one field);
# - `properties` is an object or absent (a string goes the general way);
# - the category is exactly `SMSOperational` or `Usage` (skipped, inferred or oddly spelled categories
#   go the general way), and the operation name is a string that is not a null spelling.
# The general path drops null spellings (`_NULLS`); here a number field cannot validate from one, and
# a validated record with a null spelling left in any field (strings are stripped, so this also
# catches a few padded spellings the general path keeps) goes the general way. So does any record
# that fails validation, so invalid records get exactly the same reasons. Time is parsed by the same
# `_parse_time`. Only `model_fields_set` may differ (a field present as JSON null counts as set);
# nothing uses it.

_NO_SOURCE = "\0none"  # an alias no JSON key has: the field keeps its default (time is set after)
_EVENT_HUBS_TOP = {
    "time": "time",  # parsed in Python, see `_fast_normalise`
    "operationName": "operation_name",
    "category": "category",
    "resultType": "result_type",
    "resultSignature": "result_signature",
    "durationMs": "duration_ms",
}
_EVENT_HUBS_PROPERTIES = {
    "NumberType": "number_type",
    "Country": "country",
    "MessageId": "message_id",
    "DeliveryAttempts": "delivery_attempts",
    "OutgoingMessageLength": "outgoing_message_length",
    "IncomingMessageLength": "incoming_message_length",
    "RecordId": "record_id",
    "UsageType": "usage_type",
    "UnitType": "unit_type",
    "Quantity": "quantity",
}
_LOG_ANALYTICS = {
    "TimeGenerated": "time",
    "OperationName": "operation_name",
    "Category": "category",
    "ResultType": "result_type",
    "ResultSignature": "result_signature",
    "DurationMs": "duration_ms",
    **_EVENT_HUBS_PROPERTIES,
}
# Keys both paths ignore, as each shape spells them (Log Analytics adds its own table columns).
_EVENT_HUBS_IGNORED = ("resourceId", "operationVersion", "resultDescription", "callerIpAddress", "correlationId",
                       "level", "location")
_PROPERTIES_IGNORED = ("PhoneNumber", "SdkType", "PlatformType", "Method", "URI", "Properties")
_LOG_ANALYTICS_IGNORED = ("CorrelationId", "CorrelationID", "OperationVersion", "ResultDescription", "CallerIpAddress",
                          "Level", "Location", "PhoneNumber", "SdkType", "PlatformType", "Method", "URI",
                          "TenantId", "SourceSystem", "Type", "_ResourceId", "_SubscriptionId", "_BilledSize",
                          "_IsBillable")
_EVENT_HUBS_KEYS = frozenset(_EVENT_HUBS_TOP) | frozenset(_EVENT_HUBS_IGNORED) | {"properties"}
_EVENT_HUBS_PROPERTY_KEYS = frozenset(_EVENT_HUBS_PROPERTIES) | frozenset(_PROPERTIES_IGNORED)
_LOG_ANALYTICS_KEYS = frozenset(_LOG_ANALYTICS) | frozenset(_LOG_ANALYTICS_IGNORED)


def _shape_validator(model: type[_Record], sources: dict[str, str | list[str]]) -> SchemaValidator:
    """A validator of `model` (same class, same config and field types) that reads each field from
    its one spelling in a raw record of one shape."""
    schema = model.__pydantic_core_schema__
    assert schema["type"] == "model" and schema["schema"]["type"] == "model-fields"
    fields = {}
    for name, field in schema["schema"]["fields"].items():
        source = sources.get(name, _NO_SOURCE)
        fields[name] = {**field, "validation_alias": [source] if isinstance(source, list) else source}
    # pydantic-core would reuse the model's own (prebuilt) validator for a schema of a complete model
    # class; marking the class incomplete while this one is built makes it build our schema instead.
    model.__pydantic_complete__ = False
    try:
        return SchemaValidator({**schema, "schema": {**schema["schema"], "fields": fields}}, schema.get("config"))
    finally:
        model.__pydantic_complete__ = True


def _shape_validators(sources: dict[str, str | list[str]]) -> dict[str, SchemaValidator]:
    return {SMS_OPERATIONAL: _shape_validator(SmsOperational, sources), USAGE: _shape_validator(Usage, sources)}


_EVENT_HUBS_VALIDATORS = _shape_validators(
    {field: key for key, field in _EVENT_HUBS_TOP.items() if field != "time"}
    | {field: ["properties", key] for key, field in _EVENT_HUBS_PROPERTIES.items()}
)
_LOG_ANALYTICS_VALIDATORS = _shape_validators({field: key for key, field in _LOG_ANALYTICS.items() if field != "time"})


def _fast_normalise(raw: dict[str, Any]) -> Outcome | None:
    """`_normalise(raw)` for a record in an exact known spelling; None when the record does not qualify."""
    if _EVENT_HUBS_KEYS.issuperset(raw):
        properties = raw.get("properties")
        if properties is not None and (type(properties) is not dict or not _EVENT_HUBS_PROPERTY_KEYS.issuperset(properties)):
            return None
        validators = _EVENT_HUBS_VALIDATORS
        category = raw.get("category")
        operation = raw.get("operationName")
        time = raw.get("time")
    elif _LOG_ANALYTICS_KEYS.issuperset(raw):
        validators = _LOG_ANALYTICS_VALIDATORS
        category = raw.get("Category")
        operation = raw.get("OperationName")
        time = raw.get("TimeGenerated")
    else:
        return None
    validator = validators.get(category) if type(category) is str else None
    if validator is None or type(operation) is not str or operation in _NULLS:
        return None
    try:
        record = validator.validate_python(raw)
    except ValidationError:
        return None  # the general path gives the same outcome with its own reasons
    values = record.__dict__
    if not _NULLS.isdisjoint(values.values()):
        return None
    if time is None or (type(time) is str and time in _NULLS):
        values["time_problem"] = "time is missing"
        record.__pydantic_fields_set__.add("time_problem")
    else:
        values["time"], values["time_problem"] = _parse_time(time)
        record.__pydantic_fields_set__.update(("time", "time_problem"))
    return record


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


# --- canonical bodies: one typed decode of a whole Event Hubs body (msgspec) ---------------------
#
# Azure Monitor writes `{"records": [...]}` in one exact spelling of the common schema. Such a body is
# decoded in one pass into the Structs below (msgspec: ~1.2 µs a record against ~2 µs for a bare
# orjson decode plus the per-record normalising above). The Structs are strict on purpose, so that a
# body they accept gives the same values as the general path (orjson → `normalise`) would:
# - every key, at every level, is one the Structs name (unknown fields are refused: another spelling
#   of a field — other casing, `TimeGenerated`, a field in both places — takes the general path,
#   which resolves precedence);
# - keys both paths ignore are typed too (`str | None`), because msgspec does not check what it skips
#   as orjson does (invalid UTF-8, 1e400);
# - numbers are numbers (no strings), counts are ints and amounts floats within the models' bounds
#   (`MAX_COUNT`, `MAX_DURATION_MS`, `MAX_QUANTITY`: a body with a value beyond them takes the general
#   path, which makes its record invalid); NaN/Infinity, control characters, lone surrogates, single
#   quotes, trailing commas and BOMs are refused by msgspec as by orjson.
# What the types cannot say — null spellings ("null", "", ...), padded strings, categories spelled
# otherwise — the caller checks per value (`clean`) and sends the record the general way.

_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_Duration = Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_MS)]
_Quantity = Annotated[float, msgspec.Meta(ge=0, le=MAX_QUANTITY)]


class CanonicalProperties(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """`properties` of the Event Hubs shape, as Azure spells it (SMS, Usage and Chat fields)."""

    NumberType: str | None = None
    Country: str | None = None
    MessageId: str | None = None
    DeliveryAttempts: _Count | None = None
    OutgoingMessageLength: _Count | None = None
    IncomingMessageLength: _Count | None = None
    RecordId: str | None = None
    UsageType: str | None = None
    UnitType: str | None = None
    Quantity: _Quantity | None = None
    # ignored by both paths
    PhoneNumber: str | None = None
    SdkType: str | None = None
    PlatformType: str | None = None
    Method: str | None = None
    URI: str | None = None
    Properties: str | None = None
    ChatThreadId: str | None = None


NO_PROPERTIES = CanonicalProperties()


class CanonicalRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One record of the Event Hubs shape (Azure resource-log common schema), as Azure spells it."""

    operationName: str
    category: str
    time: str | None = None
    resultType: str | None = None
    resultSignature: _Int64 | str | None = None
    durationMs: _Duration | None = None
    properties: CanonicalProperties | None = None
    # ignored by both paths
    resourceId: str | None = None
    operationVersion: str | None = None
    resultDescription: str | None = None
    callerIpAddress: str | None = None
    correlationId: str | None = None
    level: str | None = None
    location: str | None = None


class _CanonicalBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    records: list[CanonicalRecord]


_CANONICAL = msgspec.json.Decoder(_CanonicalBody).decode


def decode_canonical(body: bytes) -> list[CanonicalRecord] | None:
    """The records of a body in the canonical shape, or None when it is not one (then the general
    path decides everything, errors included). Never raises."""
    try:
        return _CANONICAL(body).records
    except (msgspec.DecodeError, ValueError):  # ValueError: UnicodeDecodeError of a str that is not UTF-8
        return None


UNUSUAL = "\0unusual"  # `clean`: a value only the general path may interpret


def clean(value: str | None) -> str | None:
    """What `_normalise` + the model make of a string value: None for a null spelling, the value
    itself when it has nothing to strip; UNUSUAL when it has (pydantic strips a subset of what
    `str.strip` does, so a value `str.strip` leaves alone is left alone by both)."""
    if value is None or value in _NULLS:
        return None
    if value.strip() is not value:
        return UNUSUAL
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_SECOND_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_whole_seconds: dict[str, int | None] = {}  # `YYYY-MM-DDThh:mm:ss` → µs since the epoch (None: not parseable)


def time_stamp(value: str | None) -> tuple[float | None, int | None]:
    """(`time.timestamp()`, `time.microsecond`) of the time `_normalise` makes of a string `time`
    value (None, None when it has none). Azure's own form, `YYYY-MM-DDThh:mm:ss.fffffffZ`, is computed
    from a cache of whole seconds: `datetime.fromisoformat` truncates the fraction to 6 digits and
    `timestamp()` of an aware datetime is its µs since the epoch / 10**6 (one correctly rounded int
    division), which is what this computes; anything else goes through `_parse_time` itself."""
    if value is None or value in _NULLS:
        return None, None
    if len(value) == 28 and value[19] == "." and value[27] == "Z" and value.isascii() and value[20:27].isdigit():
        prefix = value[:19]
        base = _whole_seconds.get(prefix, -1)
        if base == -1:
            base = None
            if _SECOND_PREFIX.fullmatch(prefix):
                parsed, _ = _parse_time(prefix + "Z")
                if parsed is not None:
                    base = (parsed - _EPOCH) // _ONE_MICROSECOND
            if len(_whole_seconds) >= 4096:
                _whole_seconds.clear()
            _whole_seconds[prefix] = base
        if base is not None:
            micro = int(value[20:26])
            return (base + micro) / 1_000_000, micro
    parsed, _ = _parse_time(value)
    if parsed is None:
        return None, None
    return parsed.timestamp(), parsed.microsecond
