"""One Event Hubs event body (bytes) → the raw records it holds, or the reason it holds none.

Azure Monitor's diagnostic settings write `{"records": [ ... ]}`; capture tools also hand us a bare
array of records or a single record object. Azure is known to emit bodies that are not strict JSON
(raw control characters inside strings, single-quoted keys and strings, bare NaN/Infinity), so when —
and only when — the strict parse fails, the body is repaired once (`consumer.repair`) and parsed
again, and the repair is reported so that it can be counted.

This module is pure: no I/O, no clock, no logging. It never raises on any input. (Its one effect
on the process: `loads` pauses the garbage collector while it parses a large text.)
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from consumer.fields import FIELDS, spellings
from consumer.repair import repair_json

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32: Azure never writes these

# Keys that mark a lone JSON object as one record (compared lower-cased).
_RECORD_MARKERS = frozenset(spelling.lower() for field in FIELDS if field.marks_record for spelling in spellings(field))


class DecodeError(StrEnum):
    """Why a body yielded no records. The values are the `reason` label of
    `acs_consumer_decode_errors_total`, so they are part of the metric contract."""

    INVALID_JSON = "invalid_json"
    NOT_RECORDS = "not_records"
    TOO_LARGE = "too_large"
    ENCODING = "encoding"
    #: Never returned by `decode_body`: the shell's reason for a body whose processing raised (a bug,
    #: an input nobody thought of); the event is counted, logged, dead-lettered and passed.
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """What one body decoded to. Exactly one of `records` (non-empty) or `error` is set.

    `records` items are whatever JSON values stood in the records list: usually dicts, but the
    record layer decides what is valid, so that one bad record never spoils its siblings.
    `detail` is a short human-readable explanation for logs; it never quotes the body's content.
    """

    records: list[Any]
    error: DecodeError | None = None
    detail: str = ""
    repaired: bool = False


def decode_body(body: bytes, max_bytes: int) -> DecodedBody:
    """Decode one event body. Never raises."""
    size = len(body)
    if size > max_bytes:
        return _fail(DecodeError.TOO_LARGE, f"body is {size} bytes, over the {max_bytes}-byte limit")
    if body.startswith(_UTF8_BOM):
        body = body[3:]
    elif body.startswith(_OTHER_BOMS):
        return _fail(DecodeError.ENCODING, "body starts with a UTF-16/32 byte-order mark; UTF-8 expected")

    repaired = False
    try:
        value = loads(body)
    except orjson.JSONDecodeError as strict_error:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _fail(DecodeError.ENCODING, f"body is not valid UTF-8 (byte {exc.start})")
        fixed = repair_json(text)
        if fixed == text:
            return _fail(DecodeError.INVALID_JSON, _describe(strict_error))
        try:
            value = loads(fixed)
        except orjson.JSONDecodeError:
            return _fail(DecodeError.INVALID_JSON, _describe(strict_error) + " (repair did not help)")
        repaired = True

    return _records_of(value, repaired)


#: Texts at least this long are parsed by `loads` with the garbage collector paused.
PAUSE_GC_FROM = 64 * 1024


def loads(data: bytes | str) -> Any:
    """`orjson.loads`; a text of `PAUSE_GC_FROM` or more is parsed with the cyclic garbage collector
    paused (it is enabled again after, if it was before).

    orjson builds every value of a body in one C call, which no thread switch interrupts. Lists (and
    dicts that hold containers) are tracked by the collector, and every 700 of them made inside that
    call run a collection there, some of them over all the objects made so far: a 1 MiB body of empty
    lists (`[[],[],...]`, 350,000 of them) took ~114 ms of CPU in one call, ~21 ms of it orjson's own
    work. Paused, the collections come after the call, at later allocations, each a separate pause of
    the thread (~14-22 ms for those 350,000 lists). Raises `orjson.JSONDecodeError` as orjson does."""
    if len(data) < PAUSE_GC_FROM or not gc.isenabled():
        return orjson.loads(data)
    gc.disable()
    try:
        return orjson.loads(data)
    finally:
        gc.enable()


def _records_of(value: Any, repaired: bool) -> DecodedBody:
    if isinstance(value, dict):
        records = _get_records(value)
        if records is not None:
            if not isinstance(records, list):
                return _fail(DecodeError.NOT_RECORDS, f'"records" is a JSON {json_type(records)}, not an array')
        elif any(k.lower() in _RECORD_MARKERS for k in value):
            records = [value]
        else:
            return _fail(DecodeError.NOT_RECORDS, 'JSON object has neither "records" nor record fields')
    elif isinstance(value, list):
        records = value
    else:
        return _fail(DecodeError.NOT_RECORDS, f"body is a JSON {json_type(value)}, not an object or array")
    if not records:
        return _fail(DecodeError.NOT_RECORDS, "records array is empty")
    return DecodedBody(records=records, repaired=repaired)


def _get_records(envelope: dict[str, Any]) -> Any:
    if "records" in envelope:
        return envelope["records"]
    for key, item in envelope.items():
        if key.lower() == "records":
            return item
    return None


def _fail(reason: DecodeError, detail: str) -> DecodedBody:
    return DecodedBody(records=[], error=reason, detail=detail)


def _describe(error: orjson.JSONDecodeError) -> str:
    # orjson's message quotes no input text beyond the position, so it is safe for logs.
    return f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"


def json_type(value: Any) -> str:
    """How JSON names the type of a parsed value (for messages that must not quote the value)."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )
