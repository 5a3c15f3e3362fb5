"""Event Hubs bodies and raw records (JSON objects) → typed records, or why a record is skipped or invalid.

The typed records are `CanonicalRecord`s: the Event Hubs shape as Azure writes it, as msgspec Structs
built from the field table (`consumer.fields`). Two decoders make them, and every record the pipeline
applies comes from one of them:
- the canonical decoder, `decode_canonical`: a whole body in the exact shape Azure Monitor writes, in
  one typed pass (the hot path);
- the general decoder, `convert`: one raw record of any shape, validated by the pydantic models below
  (`validate` gives the validated model itself) and converted into a `CanonicalRecord`.
tests/test_decoder_equality.py proves that both give the same records and metrics.

Two shapes arrive and must give the same result:
- the Event Hubs / Storage shape (Azure resource-log common schema): camelCase top-level fields
  (`time`, `operationName`, `category`, `resultType`, ...) with the category's own fields inside
  `properties` (an object, a JSON string, or Azure's single-quoted pseudo-JSON string);
- the Log Analytics shape of the ACS docs: flat PascalCase fields (`TimeGenerated`, `OperationName`,
  `PhoneNumber`, `MessageId`, `Country`, ...).
Field names match case-insensitively; a field at top level wins over the same field in `properties`.

Only what the metrics need is kept. Caller IPs and URIs are dropped here, at the edge, so no later
layer can leak them; `message_id` is kept (in memory only) to correlate delivery reports with sends,
`record_id` to drop duplicate usage records, and `sender` (`PhoneNumber`, in memory only, out of
repr) for the one label a phone number can become: a sender number the operator lists
(`pipeline.labels.senders`).

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
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from consumer.decode import json_type, loads
from consumer.fields import (
    FIELDS,
    IGNORED,
    NESTED_PROPERTIES,
    NUMBERS,
    PROPERTIES,
    Field as TableField,
    Kind,
    spellings,
)
from consumer.labels import SMS_OPERATIONAL, USAGE, BoundedMemo
from consumer.repair import repair_json


class _Record(BaseModel):
    """What every record model validates alike; `_model` gives it the table's fields."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        coerce_numbers_to_str=True,  # "ResultSignature": 202 and "202" are the same
        allow_inf_nan=False,  # NaN/Infinity are not quantities or durations
        extra="ignore",
    )


#: The pydantic type of each kind of field (`consumer.fields`): numbers bounded as the table says.
_MODEL_TYPES: dict[Kind, Any] = {"text": str, "time": datetime, "signature": str}
_MODEL_TYPES |= {kind: Annotated[bounds.type, Field(ge=bounds.low, le=bounds.high)] for kind, bounds in NUMBERS.items()}


def _definition(field: TableField) -> tuple[Any, Any]:
    """The pydantic (type, default) of a table field: optional but for required ones, and a personal
    one out of repr and dumps."""
    annotation = _MODEL_TYPES[field.kind]
    default = ... if field.required else None
    if not field.required:
        annotation = annotation | None
    if field.pii:
        return annotation, Field(default=default, repr=False, exclude=True)
    return annotation, default


def _model(category: Literal["sms", "usage"]) -> type[_Record]:
    """The validated model of a category's records: the table's common fields, then the category's;
    `time_problem` (why `time` is None) after `time`."""
    definitions: dict[str, Any] = {}
    for field in FIELDS:
        if field.category in ("common", category):
            definitions[field.name] = _definition(field)
            if field.kind == "time":
                definitions["time_problem"] = (str | None, None)
    return create_model(f"_{category}_fields", __base__=_Record, __module__=__name__, **definitions)


class SmsOperational(_model("sms")):  # type: ignore[misc]  # its fields come from the table
    """One SMSOperational log line: a send, a delivery report, an incoming message, an opt-in/out."""


class Usage(_model("usage")):  # type: ignore[misc]  # its fields come from the table
    """One Usage (billing) log line."""


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

# Every spelling of every field (`consumer.fields`) → model field; sentinels for the keys no metric
# uses (skipped without lower-casing them) and for the properties bag. Exact spellings are found
# first (the common case); any other casing through the lower-cased table.
_SKIP = "\0skip"
_PROPERTIES = "\0properties"
_SPELLINGS: dict[str, str] = {spelling: field.name for field in FIELDS for spelling in spellings(field)}
_SPELLINGS |= {spelling: _SKIP for ignored in IGNORED for spelling in spellings(ignored)}
_SPELLINGS |= {PROPERTIES: _PROPERTIES, NESTED_PROPERTIES: _PROPERTIES}
_FIELDS: dict[str, str] = {spelling.lower(): field.name for field in FIELDS for spelling in spellings(field)}
#: The categories this service reads, by their lower-cased spelling.
CATEGORY_SPELLINGS = {SMS_OPERATIONAL.lower(): SMS_OPERATIONAL, USAGE.lower(): USAGE}
#: String values the general decoder takes as no value.
NULL_SPELLINGS = frozenset({"", " ", "null", "NULL", "Null", "None", "none"})


def convert(raw: Any) -> CanonicalRecord | Skipped | Invalid:
    """The general decoder: one raw record of any shape (any key casing, the Log Analytics shape,
    string `properties`, null spellings, numbers as strings, inferred categories) → the typed record
    the canonical decoder gives for it, or why it gives none. Never raises. Its values are the
    model's (validated, stripped, without null spellings); its time is the raw string, which the
    pipeline parses with `time_stamp`."""
    outcome, time = validate(raw)
    if type(outcome) is SmsOperational or type(outcome) is Usage:
        return _canonical(outcome, time if type(time) is str else None)
    return outcome


def validate(raw: Any) -> tuple[Outcome, Any]:
    """The general decoder's validation of one raw record: the validated model (its `time` not parsed:
    None; `parse_time` parses the raw value) or why there is none, and the record's raw time value
    (None when it has none, or there is no model). Never raises."""
    if type(raw) is not dict:
        if isinstance(raw, dict):  # a dict subclass: treat it as a record all the same
            raw = dict(raw)
        else:
            return Invalid(None, f"record is a JSON {json_type(raw)}, not an object"), None
    flat, properties = _top_level(raw)
    if properties is not None:
        problem = _merge_properties(flat, properties)
        if problem:
            return Invalid(_category_name(_category_of(flat)), problem), None

    category = _category_of(flat)
    if category is None:
        return Invalid(None, "category is missing and cannot be inferred"), None
    if type(category) is not str:
        return Invalid(None, f"category is a JSON {json_type(category)}, not a string"), None
    canonical = CATEGORY_SPELLINGS.get(category) or CATEGORY_SPELLINGS.get(category.strip().lower())
    if canonical is None:
        return Skipped(category.strip()), None
    flat["category"] = canonical
    time = flat.pop("time", None)

    model = SmsOperational if canonical == SMS_OPERATIONAL else Usage
    try:
        return model.model_validate(flat), time
    except ValidationError as exc:
        return Invalid(canonical, _describe(exc)), None


def _top_level(raw: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The record's top-level fields by model field name (null spellings left out; of two spellings
    of one field, the later) and its `properties` value (None when it has none)."""
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
        if value is None or (type(value) is str and value in NULL_SPELLINGS):
            continue
        flat[name] = value
    return flat, properties


def _category_name(category: Any) -> str | None:
    return category.strip() if isinstance(category, str) else None


def _merge_properties(flat: dict[str, Any], properties: Any) -> str | None:
    if isinstance(properties, str):
        text = properties.strip()
        if not text or text in NULL_SPELLINGS:
            return None
        try:
            properties = loads(text)
        except orjson.JSONDecodeError:
            try:
                properties = loads(repair_json(text))
            except orjson.JSONDecodeError:
                return "properties is a string that is not a JSON object"
    if type(properties) is not dict:
        return f"properties is a JSON {json_type(properties)}, not an object"
    spelling = _SPELLINGS.get
    for key, value in properties.items():
        name = spelling(key)
        if name is None:
            name = _FIELDS.get(key.lower())
            if name is None:
                continue
        elif name is _SKIP or name is _PROPERTIES:
            continue
        if name not in flat and not (value is None or (type(value) is str and value in NULL_SPELLINGS)):
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
#: Record times outside these are not believed (ACS began in 2020): such a record counts, but adds
#: nothing to the age and latency histograms, whose sums one year-0001 record would otherwise swamp.
EARLIEST_TIME = datetime(2015, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
TIME_OUT_OF_RANGE = "time is out of range: before 2015 or after 2099"


def parse_time(value: Any) -> tuple[datetime | None, str | None]:
    """Parse a record time to an aware UTC datetime, or give the problem."""
    if type(value) is not str:
        return None, f"time is a JSON {json_type(value)}, not a string"
    text = value.strip()
    if len(text) > MAX_TIME_LENGTH:
        return None, f"time is longer than {MAX_TIME_LENGTH} characters"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _US_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt).replace(tzinfo=UTC)  # no offset: taken as UTC
                break
            except ValueError:
                continue
        else:
            return None, "time is not an ISO 8601 or MM/DD/YYYY date-time"
    tzinfo = parsed.tzinfo
    if tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    elif tzinfo is not UTC:  # `Z` and `+00:00` (the Event Hubs shape) are already UTC
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC form
            return None, TIME_OUT_OF_RANGE
    if not EARLIEST_TIME <= parsed < LATEST_TIME:
        return None, TIME_OUT_OF_RANGE
    return parsed, None


#: Model field → its Event Hubs spelling, to name it in reasons as Azure does.
_FIELD_SOURCE = {field.name: field.event_hubs for field in FIELDS}


def _describe(exc: ValidationError) -> str:
    """Name the field (as Azure spells it) and the problem; never quote the value, which may be PII."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"][0] if error["loc"] else "record"
        field = _FIELD_SOURCE.get(str(loc), str(loc))
        message = "is missing" if error["type"] == "missing" else error["msg"].lower()
        parts.append(f"{field} {message}")
    return "; ".join(parts)


# --- the typed records: the Event Hubs shape as Azure writes it (msgspec Structs) ----------------
#
# Every record the pipeline applies is a `CanonicalRecord` (with its `CanonicalProperties`), whichever
# decoder made it:
# - the canonical decoder (`decode_canonical`): Azure Monitor writes `{"records": [...]}` in one exact
#   spelling of the common schema, and such a body is decoded in one pass into these Structs
#   (msgspec: ~1.2 µs a record against ~2 µs for a bare orjson decode plus `convert`);
# - the general decoder (`convert`): any other body, record by record, validated by the models above
#   and converted into the same Structs.
# The Structs are built from `consumer.fields` and strict on purpose, so that a body they accept gives
# the same values as the general decoder would:
# - every key, at every level, is one the Structs name (unknown fields are refused: another spelling
#   of a field — other casing, `TimeGenerated`, a field in both places — takes the general decoder,
#   which resolves precedence);
# - keys no metric uses are typed too (`str | None`), because msgspec does not check what it skips
#   as orjson does (invalid UTF-8, 1e400);
# - numbers are numbers (no strings), counts are ints and amounts floats within the table's bounds
#   (`consumer.fields.NUMBERS`, as the models: a body with a value beyond them takes the general
#   decoder, which makes its record invalid); NaN/Infinity, control characters, lone surrogates, single
#   quotes, trailing commas and BOMs are refused by msgspec as by orjson.
# What the types cannot say — null spellings ("null", "", ...), padded strings, categories spelled
# otherwise — the pipeline checks per value (`plain`) and has the general decoder convert that record.

#: The msgspec type of each kind of field (`consumer.fields`): numbers bounded as the table says; a
#: signature an integer msgspec can hold (int64) or a string.
_KINDS: dict[Kind, Any] = {
    "text": str,
    "time": str,
    "signature": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | str,
}
_KINDS |= {
    kind: Annotated[bounds.type, msgspec.Meta(ge=bounds.low, le=bounds.high)] for kind, bounds in NUMBERS.items()
}


def _struct(name: str, doc: str, fields: list[tuple[str, Any, bool]]) -> type[msgspec.Struct]:
    """A strict Struct of `fields` (name, type, required), required ones first."""
    ordered = [(n, t) for n, t, required in fields if required] + [(n, t | None, None) for n, t, required in fields
                                                                     if not required]
    struct = msgspec.defstruct(name, ordered, forbid_unknown_fields=True, gc=False, module=__name__)
    struct.__doc__ = doc
    return struct


if TYPE_CHECKING:
    # What mypy sees of the Structs built from the table below (mypy cannot see a class built at run
    # time): their fields, in their order, with plain types; the bounds are the built Structs' alone.
    # tests/test_record_types.py checks that both agree.

    class CanonicalProperties(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        NumberType: str | None = None
        Country: str | None = None
        MessageId: str | None = None
        PhoneNumber: str | None = None
        DeliveryAttempts: int | None = None
        OutgoingMessageLength: int | None = None
        IncomingMessageLength: int | None = None
        RecordId: str | None = None
        UsageType: str | None = None
        UnitType: str | None = None
        Quantity: float | None = None
        SdkType: str | None = None
        PlatformType: str | None = None
        Method: str | None = None
        URI: str | None = None
        ChatThreadId: str | None = None
        Properties: str | None = None

    class CanonicalRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        operationName: str
        category: str
        time: str | None = None
        resultType: str | None = None
        resultSignature: int | str | None = None
        resourceId: str | None = None
        durationMs: float | None = None
        properties: CanonicalProperties | None = None
        operationVersion: str | None = None
        resultDescription: str | None = None
        callerIpAddress: str | None = None
        correlationId: str | None = None
        level: str | None = None
        location: str | None = None

else:
    CanonicalProperties = _struct(
        "CanonicalProperties", "`properties` of the Event Hubs shape, as Azure spells it (`consumer.fields`).",
        [(f.event_hubs, _KINDS[f.kind], False) for f in FIELDS if f.nested]
        + [(i.event_hubs, str, False) for i in IGNORED if i.nested and i.event_hubs is not None]
        + [(NESTED_PROPERTIES, str, False)],
    )
    CanonicalRecord = _struct(
        "CanonicalRecord", "One record of the Event Hubs shape, as Azure spells it (`consumer.fields`).",
        [(f.event_hubs, _KINDS[f.kind], f.required) for f in FIELDS if not f.nested]
        + [(PROPERTIES, CanonicalProperties, False)]
        + [(i.event_hubs, str, False) for i in IGNORED if not i.nested and i.event_hubs is not None],
    )


NO_PROPERTIES = CanonicalProperties()


def _converter(model: type[_Record]) -> tuple[attrgetter[Any], tuple[str, ...], attrgetter[Any], tuple[str, ...]]:
    """How `_canonical` reads a model: its top-level and nested fields (but the time), and their spellings."""
    top = [f for f in FIELDS if not f.nested and f.name != "time" and f.name in model.model_fields]
    nested = [f for f in FIELDS if f.nested and f.name in model.model_fields]
    return (attrgetter(*(f.name for f in top)), tuple(f.event_hubs for f in top),
            attrgetter(*(f.name for f in nested)), tuple(f.event_hubs for f in nested))


_CONVERTERS = {SmsOperational: _converter(SmsOperational), Usage: _converter(Usage)}


def _canonical(record: SmsOperational | Usage, time: str | None) -> CanonicalRecord:
    """The typed record of a validated model (its fields; `time` raw)."""
    top, top_spellings, nested, nested_spellings = _CONVERTERS[type(record)]
    properties = CanonicalProperties(**dict(zip(nested_spellings, nested(record), strict=True)))
    return CanonicalRecord(time=time, properties=properties, **dict(zip(top_spellings, top(record), strict=True)))


class _CanonicalBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    records: list[CanonicalRecord]


_CANONICAL = msgspec.json.Decoder(_CanonicalBody).decode


def decode_canonical(body: bytes) -> list[CanonicalRecord] | None:
    """The records of a body in the canonical shape, or None when it is not one (then the general
    decoder decides everything, errors included). Never raises."""
    try:
        return _CANONICAL(body).records
    except (msgspec.DecodeError, ValueError):  # ValueError: UnicodeDecodeError of a str that is not UTF-8
        return None


def plain(value: str | None) -> bool:
    """Whether the general decoder leaves a string value as it is: None, or neither a null spelling
    nor padded (pydantic strips a subset of what `str.strip` does, so a value `str.strip` leaves alone
    is left alone by both)."""
    return value is None or (value not in NULL_SPELLINGS and value.strip() is value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
_SECOND_PREFIX = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def time_stamp(value: str | None) -> tuple[float | None, int | None]:
    """(`time.timestamp()`, `time.microsecond`) of the time `parse_time` makes of a record's raw `time`
    string (None, None when it has none: a null spelling, or a value `parse_time` refuses).

    Azure's own form, `YYYY-MM-DDThh:mm:ss.fffffffZ`, is computed from a cache of whole seconds:
    `datetime.fromisoformat` truncates the fraction to 6 digits and `timestamp()` of an aware datetime
    is its µs since the epoch / 10**6 (one correctly rounded int division), which is what this
    computes; anything else goes through `parse_time` itself. Azure's form is tested first, with no
    step it does not need: the pipeline calls this for every record (no value of 28 characters is a null spelling)."""
    if value is not None and len(value) == 28 and value[27] == "Z" and value[19] == ".":
        fraction = value[20:27]
        base = _whole_seconds[value[:19]]
        if base is not None and fraction.isascii() and fraction.isdigit():  # the cache holds validated prefixes
            microsecond = int(fraction) // 10  # truncated to 6 digits
            return (base + microsecond) / 1_000_000, microsecond
    elif value is None or value in NULL_SPELLINGS:
        return None, None
    parsed, _ = parse_time(value)
    if parsed is None:
        return None, None
    return parsed.timestamp(), parsed.microsecond


def _whole_second(prefix: str) -> int | None:
    """The µs since the epoch of `prefix` (`YYYY-MM-DDThh:mm:ss`), or None when it is not a valid time
    in range."""
    if _SECOND_PREFIX.fullmatch(prefix):
        parsed, _ = parse_time(prefix + "Z")
        if parsed is not None:
            return (parsed - _EPOCH) // _ONE_MICROSECOND
    return None


#: `YYYY-MM-DDThh:mm:ss` → µs since the epoch (None: not parseable), for `time_stamp`.
_whole_seconds: BoundedMemo[str, int | None] = BoundedMemo(_whole_second)
